"""The `video-text-to-text` pipeline: transformers' `image-text-to-text` pipeline, with videos as well as images.

It takes every input form and parameter `image-text-to-text` takes and returns the same output structure: chats
(one, a list, a generator or a dataset of them, e.g. `KeyDataset`), `text=` with `images=` and now `videos=`, dicts
`{"text": ..., "videos": ..., "images": ...}`, `batch_size`, `num_return_sequences`, `return_full_text` (default
True), `return_tensors`, `continue_final_message`, `stop_sequence`, `max_new_tokens`, `generate_kwargs`,
`processor_kwargs`, `timeout`. On top of that, a question given as `text=` with `videos=` / `images=` and no
placeholder becomes one user turn of the chat template, media first.

A plain `Pipeline` subclass (preprocess -> generate -> decode), so it depends on no other pipeline's internals; it
batches its own inputs (left-padded tokens, videos zero-padded along time). Hub code: imports only transformers'
public API and its sibling modules.
"""

import enum
import types
from typing import is_typeddict

import torch
from transformers import GenerationConfig, Pipeline
from transformers.image_utils import load_image

from .video_processing_storm import concatenate_videos, make_image_list, make_video_list

# Used when neither the call nor the model's generation config bounds the answer's length (as image-text-to-text).
DEFAULT_MAX_NEW_TOKENS = 256
# Keywords that go to generate(): generation-config fields and generate()'s other arguments.
_GENERATION_OPTIONS = {key for key in vars(GenerationConfig()) if not key.startswith("_")} | {
    "generation_config", "logits_processor", "stopping_criteria", "prefix_allowed_tokens_fn", "streamer",
    "assistant_model", "negative_prompt_ids", "negative_prompt_attention_mask",
}


class ReturnType(enum.Enum):
    """What each result holds, as in transformers' text pipelines."""

    TENSORS = 0
    NEW_TEXT = 1
    FULL_TEXT = 2


class _Chat:
    """One conversation, kept whole so that the base pipeline does not iterate over its messages as a batch."""

    def __init__(self, messages):
        self.messages = list(messages)


def _is_message(value) -> bool:
    return isinstance(value, dict) and "role" in value and "content" in value


def _is_chat(value) -> bool:
    """One conversation: a non-empty list of {"role": ..., "content": ...} messages."""
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(_is_message(m) for m in value)


def _wrap_chats(value):
    """A chat, or a list of chats, each wrapped whole; None for anything else."""
    if _is_chat(value):
        return _Chat(value)
    if isinstance(value, (list, tuple)) and value and all(_is_chat(chat) for chat in value):
        return [_Chat(chat) for chat in value]
    return None


def _messages(item):
    """The messages of a conversation item (ours, transformers' chat wrapper, or a dataset's list); else None."""
    messages = getattr(item, "messages", None)
    if messages is not None:
        return list(messages)
    return list(item) if _is_chat(item) else None


def _option_names(processor) -> set[str]:
    """Names of the processor's options (its text, video, image and top-level processing kwargs)."""
    names = set()
    for name, annotation in getattr(processor.valid_processor_kwargs, "__annotations__", {}).items():
        names |= set(annotation.__annotations__) if is_typeddict(annotation) else {name}
    return names - {"return_tensors"}


def _user_turn(text: str, videos, images) -> list[dict]:
    """A question and its media as one user message: videos, then images, then the text."""
    content = [{"type": "video", "video": video} for video in videos]
    content += [{"type": "image", "image": image} for image in images]
    return [{"role": "user", "content": content + [{"type": "text", "text": text}]}]


class StormVideoTextToTextPipeline(Pipeline):
    """Answer questions about videos (and images), with the inputs and outputs of `image-text-to-text`.

    ```python
    pipe = pipeline("video-text-to-text", model="path/or/hub-id", trust_remote_code=True)
    pipe(text="What happens?", videos="clip.mp4", num_frames=32, return_full_text=False)
    chat = [{"role": "user", "content": [{"type": "video", "path": "clip.mp4"}, {"type": "text", "text": "Why?"}]}]
    pipe(chat, max_new_tokens=64)                    # -> [{"input_text": chat, "generated_text": chat + [answer]}]
    pipe([chat, chat], batch_size=2)                 # one list of results per chat
    pipe(KeyDataset(dataset, "messages"), batch_size=8)   # a generator of results
    ```
    Inputs: a chat, a list / generator / dataset of chats or of `{"text", "videos", "images"}` dicts; or `text=` (a
    string or a list of strings) with `videos=` and/or `images=` (one entry per text). A string holding placeholders
    (`<|video_pad|>`, `<|image_pad|>`) is a prompt and goes to the processor as it is; a string without them, given
    with media, is a question and becomes one user turn of the chat template. Media inside chats go in the message
    content (`{"type": "video", "path" | "url" | "video": ...}`).

    Options: processor options (`num_frames`, `fps`, `max_frames`, `min_frames`, `temporal_sampling_stride`,
    `max_video_tokens` (a token budget per video that picks the stride), `do_sample_frames`, `video_metadata`, ... or
    `processor_kwargs={...}`) go to the processor (a name both the
    processor and generation know, `max_length`, goes to the processor, as in image-text-to-text: pass generation's
    in `generate_kwargs`); generation options (`max_new_tokens`, `do_sample`, `num_return_sequences`, ... or
    `generate_kwargs={...}`) to `generate`; `stop_sequence` stops at a string; `timeout` bounds the download of videos
    and images given as URLs (seconds a server may stay silent); any other keyword goes to the chat template, as in image-text-to-text.

    Output, per input, one dict per returned sequence: `{"input_text": ..., "generated_text": ...}`. By default
    (`return_full_text=True`) a chat's `generated_text` is the chat with the answer appended (as a new assistant
    message, or onto the final assistant message it continues) and a string's is the string followed by the answer;
    `return_full_text=False` gives the answer alone; `return_tensors=True` gives `generated_token_ids` instead.
    """

    _load_processor = True
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def _sanitize_parameters(
        self,
        max_new_tokens=None,
        generate_kwargs=None,
        timeout=None,
        return_full_text=None,
        return_tensors=None,
        return_type=None,
        clean_up_tokenization_spaces=None,
        stop_sequence=None,
        continue_final_message=None,
        skip_special_tokens=None,
        processor_kwargs=None,
        **kwargs,
    ):
        processor_options, generation = _option_names(self.processor), dict(generate_kwargs or {})
        given_options = {key: kwargs.pop(key) for key in list(kwargs) if key in processor_options}
        repeated = given_options.keys() & (processor_kwargs or {}).keys()
        if repeated:
            raise ValueError(f"{sorted(repeated)} given both as keywords and in processor_kwargs; pass each once.")
        for key in [key for key in kwargs if key in _GENERATION_OPTIONS]:
            if key in generation:
                raise ValueError(f"'{key}' given both as a keyword and in generate_kwargs; pass it once.")
            generation[key] = kwargs.pop(key)
        if max_new_tokens is not None:
            if "max_new_tokens" in generation:
                raise ValueError("'max_new_tokens' given both as a keyword and in generate_kwargs; pass it once.")
            generation["max_new_tokens"] = max_new_tokens
        if stop_sequence is not None:
            generation["stop_strings"] = [stop_sequence] if isinstance(stop_sequence, str) else list(stop_sequence)
            generation["tokenizer"] = self.processor.tokenizer

        preprocess = {"template_kwargs": kwargs} if kwargs else {}
        if given_options or processor_kwargs:
            preprocess["processor_kwargs"] = {**given_options, **(processor_kwargs or {})}
        for name, value in (("timeout", timeout), ("continue_final_message", continue_final_message)):
            if value is not None:
                preprocess[name] = value
        forward = {"generate_kwargs": generation} if generation else {}

        if return_full_text is not None and return_type is None:
            if return_tensors is not None:
                raise ValueError("`return_full_text` and `return_tensors` exclude each other; pass one.")
            return_type = ReturnType.FULL_TEXT if return_full_text else ReturnType.NEW_TEXT
        if return_tensors is not None and return_type is None:
            return_type = ReturnType.TENSORS
        postprocess = {
            name: value
            for name, value in (
                ("return_type", return_type),
                ("continue_final_message", continue_final_message),
                ("clean_up_tokenization_spaces", clean_up_tokenization_spaces),
                ("skip_special_tokens", skip_special_tokens),
            )
            if value is not None
        }
        return preprocess, forward, postprocess

    def __call__(self, videos=None, text=None, images=None, **kwargs):
        """`videos` (first argument) may instead hold the inputs: a chat, a list or generator of chats or of
        `{"text", "videos", "images"}` dicts, or a dataset (e.g. `KeyDataset`)."""
        if videos is None and text is None and images is None:
            raise ValueError("Pass chat messages, or `text=` with `videos=` and/or `images=`.")
        chats = _wrap_chats(text)
        if chats is not None:
            if videos is not None or images is not None:
                raise ValueError(
                    "With chat messages, put each video inside the message content, e.g. {'type': 'video', 'path': "
                    "'clip.mp4'} (and each image as {'type': 'image', ...}), instead of passing `videos=` or `images=`."
                )
            return super().__call__(chats, **kwargs)
        if text is None and images is None:
            return super().__call__(self._as_inputs(videos), **kwargs)
        if isinstance(text, str):
            return super().__call__({"text": text, "videos": videos, "images": images}, **kwargs)
        if isinstance(text, (list, tuple)) and all(isinstance(t, str) for t in text):
            media = (("videos", videos), ("images", images))
            per_text = [self._per_text(given, len(text), name) for name, given in media]
            return super().__call__(
                [{"text": t, "videos": v, "images": i} for t, v, i in zip(text, *per_text)], **kwargs
            )
        raise ValueError(
            "`text` must be a string, a list of strings, chat messages ({'role': ..., 'content': ...} dicts), or a "
            f"list of chats; got {type(text).__name__}."
        )

    @staticmethod
    def _as_inputs(inputs):
        """Inputs given as the first argument: chats wrapped whole; dicts, generators and datasets as they are."""
        chats = _wrap_chats(inputs)
        if chats is not None:
            return chats
        if isinstance(inputs, (dict, types.GeneratorType, torch.utils.data.Dataset)) or (
            isinstance(inputs, (list, tuple)) and inputs and all(isinstance(item, dict) for item in inputs)
        ):
            return list(inputs) if isinstance(inputs, tuple) else inputs
        raise ValueError(
            "Pass the question as `text=` with the video as `videos=`, or pass chat messages, a list of "
            "{'text': ..., 'videos': ...} dicts, a generator or a dataset."
        )

    @staticmethod
    def _per_text(media, count: int, name: str) -> list:
        if media is None:
            return [None] * count
        if not isinstance(media, (list, tuple)) or len(media) != count:
            given = len(media) if isinstance(media, (list, tuple)) else "one"
            raise ValueError(f"Got {count} texts but {given} {name}: pass one entry of {name} per text, as a list.")
        return list(media)

    # ----- preprocess: one input -> processor outputs -----

    def preprocess(
        self, inputs, timeout=None, continue_final_message=None, processor_kwargs=None, template_kwargs=None
    ):
        processor_kwargs = dict(processor_kwargs or {})
        if timeout is not None:  # for videos given as URLs (the processor downloads them)
            processor_kwargs.setdefault("timeout", timeout)
        messages = _messages(inputs)
        if messages is None:
            if not isinstance(inputs, dict) or not isinstance(inputs.get("text"), str):
                raise ValueError(f"Cannot use a {type(inputs).__name__}: pass a chat or a dict with 'text'.")
            text, videos = inputs["text"], inputs.get("videos")
            images = None if inputs.get("images") is None else [
                load_image(image, timeout=timeout) if isinstance(image, str) else image
                for image in make_image_list(inputs["images"])
            ]
            processor = self.processor
            has_media = videos is not None or images is not None
            if has_media and processor.video_token not in text and processor.image_token not in text:
                videos = [] if videos is None else make_video_list(videos)
                messages, prompt = _user_turn(text, videos, images or []), text
            else:  # a prompt: to the processor as it is
                model_inputs = processor(
                    text=text, videos=videos, images=images, return_tensors="pt", **processor_kwargs
                )
                return {"model_inputs": self._cast(model_inputs), "prompt": text}
        else:
            prompt = _Chat(messages)
        if continue_final_message is None:  # a chat ending with the assistant's words is continued
            continue_final_message = messages[-1]["role"] == "assistant"
        model_inputs = self.processor.apply_chat_template(
            messages,
            add_generation_prompt=not continue_final_message,
            continue_final_message=continue_final_message,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs=processor_kwargs,
            **(template_kwargs or {}),
        )
        return {"model_inputs": self._cast(model_inputs), "prompt": prompt}

    def _cast(self, model_inputs):
        return model_inputs.to(self.dtype) if self.dtype is not None else model_inputs

    # ----- forward: a batch of inputs -> generated sequences -----

    def _collate(self, items: list) -> dict:
        """Processor outputs of several inputs as one batch: tokens left-padded, videos zero-padded along time."""
        if len(items) == 1:
            return dict(items[0])
        strides = {item["temporal_sampling_stride"] for item in items if "temporal_sampling_stride" in item}
        if len(strides) > 1:
            raise ValueError(f"Inputs of one batch were processed with different temporal_sampling_stride {strides}.")
        tokens = self.processor.tokenizer.pad(
            {key: [row for item in items for row in item[key].tolist()] for key in ("input_ids", "attention_mask")},
            padding=True,
            padding_side="left",
            return_tensors="pt",
        )
        batch = dict(tokens)
        with_videos = [item for item in items if "pixel_values_videos" in item]
        if with_videos:
            batch["pixel_values_videos"] = concatenate_videos([item["pixel_values_videos"] for item in with_videos])
            batch["video_frame_counts"] = torch.cat([item["video_frame_counts"] for item in with_videos])
        with_images = [item["pixel_values"] for item in items if "pixel_values" in item]
        if with_images:
            batch["pixel_values"] = torch.cat(with_images)
        if strides:
            batch["temporal_sampling_stride"] = strides.pop()
        return batch

    def _forward(self, inputs, generate_kwargs=None):
        items = inputs["model_inputs"]
        batch = self._collate(items if isinstance(items, list) else [items])
        generate_kwargs = dict(generate_kwargs or {})
        bounded = {"max_new_tokens", "max_length", "generation_config"} & generate_kwargs.keys()
        if not bounded and self.model.generation_config.max_new_tokens is None:
            generate_kwargs["max_new_tokens"] = DEFAULT_MAX_NEW_TOKENS
        generate_kwargs.setdefault("pad_token_id", self.processor.tokenizer.pad_token_id)
        sequences = self.model.generate(**batch, **generate_kwargs)  # (B * n, prompt + new)
        input_ids = batch["input_ids"]
        sequences = sequences.reshape(input_ids.shape[0], -1, sequences.shape[-1])  # (B, n, prompt + new)
        return {"generated_sequence": sequences, "input_ids": input_ids, "prompt": inputs["prompt"]}

    # ----- postprocess: one input's sequences -> records -----

    def postprocess(
        self,
        outputs,
        return_type=ReturnType.FULL_TEXT,
        continue_final_message=None,
        skip_special_tokens=None,
        clean_up_tokenization_spaces=None,
    ):
        prompt = outputs["prompt"]
        sequences = outputs["generated_sequence"].flatten(0, 1)  # (n, prompt + new)
        input_text = prompt.messages if isinstance(prompt, _Chat) else prompt
        if return_type == ReturnType.TENSORS:
            return [{"input_text": input_text, "generated_token_ids": sequence} for sequence in sequences]
        decode = {"skip_special_tokens": True if skip_special_tokens is None else skip_special_tokens}
        if clean_up_tokenization_spaces is not None:
            decode["clean_up_tokenization_spaces"] = clean_up_tokenization_spaces
        answers = self.processor.post_process_image_text_to_text(
            sequences[:, outputs["input_ids"].shape[-1] :], **decode
        )
        if return_type == ReturnType.FULL_TEXT:
            answers = [self._full_text(prompt, answer, continue_final_message) for answer in answers]
        return [{"input_text": input_text, "generated_text": answer} for answer in answers]

    @staticmethod
    def _full_text(prompt, answer: str, continue_final_message):
        """The prompt with the answer: appended to a string; for a chat, a new assistant message, or the final
        assistant message continued."""
        if not isinstance(prompt, _Chat):
            return prompt + answer
        messages = prompt.messages
        if continue_final_message is None:
            continue_final_message = messages[-1]["role"] == "assistant"
        if not continue_final_message:
            return messages + [{"role": "assistant", "content": answer}]
        content = messages[-1]["content"]
        if isinstance(content, str):
            content = content + answer
        else:
            content = content[:-1] + [{**content[-1], "text": content[-1]["text"] + answer}]
        return messages[:-1] + [{"role": messages[-1]["role"], "content": content}]
