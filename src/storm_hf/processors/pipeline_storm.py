"""The `video-text-to-text` pipeline: chat messages (or text + videos) in, generated text out.

A plain `Pipeline` subclass (preprocess -> generate -> decode) so it does not depend on the internals of other
pipelines. Hub code: imports only transformers' public API.
"""

from transformers import Pipeline

# Frame-selection settings the pipeline passes to the processor.
PROCESSOR_KWARGS = ("num_frames", "fps", "max_frames", "min_frames", "temporal_sampling_stride", "max_video_tokens")
# Used when neither the call nor the model's generation config bounds the answer's length.
DEFAULT_MAX_NEW_TOKENS = 256


def _is_chat(value) -> bool:
    """One conversation: a list of {"role": ..., "content": ...} messages."""
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(isinstance(m, dict) and "role" in m for m in value)


def _user_turn(text: str, video) -> "_Conversation":
    return _Conversation([{"role": "user", "content": [{"type": "video", "video": video}, {"type": "text", "text": text}]}])


class _Conversation:
    """One conversation, kept whole so the base pipeline does not iterate over its messages as a batch."""

    def __init__(self, messages):
        self.messages = list(messages)


class StormVideoTextToTextPipeline(Pipeline):
    """Answer questions about videos.

    ```python
    pipe = pipeline("video-text-to-text", model="path/or/hub-id", trust_remote_code=True)
    pipe(text="What happens?", videos="clip.mp4", num_frames=32)
    pipe(text=[{"role": "user", "content": [{"type": "video", "path": "clip.mp4"}, {"type": "text", "text": "..."}]}])
    ```
    Accepts one conversation, a list of conversations, `text=` + `videos=` (one each or equal-length lists).
    Frame settings (`num_frames`, `fps`, `max_frames`, `min_frames`, `temporal_sampling_stride`, and
    `max_video_tokens`, a token budget per video that picks the stride) go to the processor, generation settings
    (`max_new_tokens`, `do_sample`, ... or `generate_kwargs=`) to `generate`.
    Each input gives `[{"input_text": messages, "generated_text": answer}]`; with `return_full_text=True` the generated text
    is the whole conversation with the answer appended as an assistant message.
    """

    _load_processor = True
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def _sanitize_parameters(self, return_full_text=None, generate_kwargs=None, skip_special_tokens=None, **kwargs):
        preprocess = {key: kwargs.pop(key) for key in PROCESSOR_KWARGS if key in kwargs}
        forward = {"generate_kwargs": {**(generate_kwargs or {}), **kwargs}}
        postprocess = {}
        if return_full_text is not None:
            postprocess["return_full_text"] = return_full_text
        if skip_special_tokens is not None:
            postprocess["skip_special_tokens"] = skip_special_tokens
        return preprocess, forward, postprocess

    def __call__(self, text=None, videos=None, **kwargs):
        if text is None:
            raise ValueError("Pass the question as `text=` (a string or chat messages), with the video(s) as `videos=`.")
        if _is_chat(text):
            self._refuse_separate_videos(videos)
            return super().__call__(_Conversation(text), **kwargs)
        if isinstance(text, (list, tuple)) and text and all(_is_chat(chat) for chat in text):
            self._refuse_separate_videos(videos)
            return super().__call__([_Conversation(chat) for chat in text], **kwargs)
        if isinstance(text, str):
            if videos is None:
                raise ValueError("`text` is a plain string: pass the video with `videos=` (a path, URL or frames).")
            return super().__call__(_user_turn(text, videos), **kwargs)
        if isinstance(text, (list, tuple)) and all(isinstance(t, str) for t in text):
            if not isinstance(videos, (list, tuple)) or len(videos) != len(text):
                count = len(videos) if isinstance(videos, (list, tuple)) else "one"
                raise ValueError(f"Got {len(text)} texts but {count} videos: pass one video per text as a list.")
            return super().__call__([_user_turn(t, v) for t, v in zip(text, videos)], **kwargs)
        raise ValueError(
            "`text` must be a string, a list of strings, chat messages ({'role': ..., 'content': ...} dicts), "
            f"or a list of chats; got {type(text).__name__}."
        )

    @staticmethod
    def _refuse_separate_videos(videos) -> None:
        if videos is not None:
            raise ValueError(
                "With chat messages, put each video inside the message content, e.g. "
                "{'type': 'video', 'path': 'clip.mp4'}, instead of passing `videos=`."
            )

    def preprocess(self, conversation, **processor_kwargs):
        inputs = self.processor.apply_chat_template(
            conversation.messages,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs=processor_kwargs,
        )
        inputs = inputs.to(self.dtype) if self.dtype is not None else inputs
        return {"model_inputs": inputs, "messages": conversation.messages}

    def _forward(self, inputs, generate_kwargs=None):
        model_inputs = inputs["model_inputs"]
        generate_kwargs = dict(generate_kwargs or {})
        bounded = {"max_new_tokens", "max_length", "generation_config"} & generate_kwargs.keys()
        if not bounded and self.model.generation_config.max_new_tokens is None:
            generate_kwargs["max_new_tokens"] = DEFAULT_MAX_NEW_TOKENS
        generate_kwargs.setdefault("pad_token_id", self.processor.tokenizer.pad_token_id)
        sequences = self.model.generate(**model_inputs, **generate_kwargs)
        prompt_length = model_inputs["input_ids"].shape[1]
        return {"new_tokens": sequences[:, prompt_length:], "messages": inputs["messages"]}

    def postprocess(self, outputs, return_full_text=False, skip_special_tokens=True):
        answer = self.processor.decode(outputs["new_tokens"][0], skip_special_tokens=skip_special_tokens)
        messages = outputs["messages"]
        generated = messages + [{"role": "assistant", "content": answer}] if return_full_text else answer
        return [{"input_text": messages, "generated_text": generated}]
