"""StormProcessor: a tokenizer and a StormVideoProcessor, producing model-ready inputs for STORM.

Each video placeholder in the text becomes exactly the tokens the model fills: for every temporal slot the model
keeps (after temporal pooling k and test-time sampling s), `tokens_per_frame` video tokens followed by one frame
separator token; an image becomes `tokens_per_frame` image tokens and one separator. The expansion happens on token
ids, so the separator stays one token whatever text follows the placeholder.

Placeholders come from the prompt, never from what users write inside chat messages: the chat template writes one
placeholder per video or image block, and wraps a placeholder typed inside a message's text in private-use markers
(`processing_compat.CONTROL_MARK_START` / `CONTROL_MARK_END`), which the processor encodes as plain text. Text passed
to the processor directly is a prompt: every placeholder in it counts, as in transformers' processors.

Hub code: imports only the standard library, torch, transformers' public API and its sibling modules.
"""

import re

from transformers import BatchFeature, ProcessorMixin
from transformers.processing_utils import MultiModalData, ProcessingKwargs, Unpack

from .processing_compat import CONTROL_MARK_END, CONTROL_MARK_START, pop_processing_flag
from .video_processing_storm import StormVideosKwargs, make_image_list, make_video_list

# The placeholders a prompt holds for each video / image, as Qwen2-VL spells them (the project's one definition).
VIDEO_TOKEN, IMAGE_TOKEN = "<|video_pad|>", "<|image_pad|>"
# Marked text (encoded as plain text), or a lone marker (dropped; it still separates the text on either side).
_MARKED = re.compile(f"{CONTROL_MARK_START}(.*?){CONTROL_MARK_END}|[{CONTROL_MARK_START}{CONTROL_MARK_END}]", re.DOTALL)


def _marked_in_template(token: str) -> str:
    """`token` wrapped in the plain-text markers, as a Jinja string literal's escapes."""
    return (CONTROL_MARK_START + token + CONTROL_MARK_END).encode("unicode_escape").decode("ascii")


# Qwen2-style: a default system turn, `<|im_start|>role\n...<|im_end|>\n` per message, one placeholder per video or
# image block; placeholders typed inside text are marked as plain text. Assistant turns are marked for
# `return_assistant_tokens_mask`.
CHAT_TEMPLATE = (
    "{%- macro text(value) -%}"
    "{{ value | replace('" + VIDEO_TOKEN + "', '" + _marked_in_template(VIDEO_TOKEN) + "')"
    " | replace('" + IMAGE_TOKEN + "', '" + _marked_in_template(IMAGE_TOKEN) + "') }}"
    "{%- endmacro -%}"
    "{%- macro render(content) -%}"
    "{%- if content is string -%}{{ text(content) }}"
    "{%- else -%}{%- for block in content -%}"
    "{%- if block['type'] == 'video' -%}{{ '" + VIDEO_TOKEN + "' }}"
    "{%- elif block['type'] == 'image' -%}{{ '" + IMAGE_TOKEN + "' }}"
    "{%- elif block['type'] == 'text' -%}{{ text(block['text']) }}"
    "{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{ render(message['content']) + '<|im_end|>' }}{% endgeneration %}"
    "{%- else -%}{{ render(message['content']) + '<|im_end|>' }}{%- endif -%}"
    "{{ '\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


class StormProcessorKwargs(ProcessingKwargs, total=False):
    videos_kwargs: StormVideosKwargs
    # Defaults on the kwargs class: read by transformers 5.17 (which requires the attribute) and later releases.
    _defaults = {"text_kwargs": {"padding": True, "padding_side": "left"}}


class StormProcessor(ProcessorMixin):
    r"""
    Wraps a tokenizer and a [`StormVideoProcessor`]. Text holds one `video_token` per video and one `image_token` per
    image; the processor returns `input_ids`, `attention_mask`, `pixel_values_videos` (num_videos, T_max, 3, H, W),
    `video_frame_counts` (num_videos,), `pixel_values` (num_images, 3, H, W), and `temporal_sampling_stride` (a
    Python int) when the caller passed one or a `max_video_tokens` budget chose it, so that `model.generate(**inputs)`
    uses the same stride the tokens were counted with. Videos and images can also be processed without text.

    Batches are padded on the left by default (ready for generation), and the tokenizer is set to pad on the left
    too (saved with it), so code that pads with the tokenizer alone, such as a pipeline's batching, agrees.

    Args:
        video_processor ([`StormVideoProcessor`]): frames, sampling and the model's token geometry.
        tokenizer: a tokenizer that knows `video_token` and `image_token` as single special tokens.
        chat_template (`str`, *optional*): defaults to the Qwen2-style `CHAT_TEMPLATE`.
        video_token (`str`, defaults to `"<|video_pad|>"`), image_token (`str`, defaults to `"<|image_pad|>"`):
            placeholders in the text, repeated into the tokens the model fills.
        frame_separator (`str`, defaults to `"\n"`): text of the one token that ends every temporal slot.
    """

    valid_processor_kwargs = StormProcessorKwargs
    skip_tensor_conversion = ["video_metadata", "temporal_sampling_stride"]

    def __init__(
        self,
        video_processor=None,
        tokenizer=None,
        chat_template=None,
        video_token: str = VIDEO_TOKEN,
        image_token: str = IMAGE_TOKEN,
        frame_separator: str = "\n",
        **kwargs,
    ):
        self.video_token = video_token
        self.image_token = image_token
        self.frame_separator = frame_separator
        self.video_token_id = self._single_token_id(tokenizer, video_token, "video_token")
        self.image_token_id = self._single_token_id(tokenizer, image_token, "image_token")
        self.frame_separator_id = self._single_token_id(tokenizer, frame_separator, "frame_separator")
        tokenizer.padding_side = tokenizer.init_kwargs["padding_side"] = "left"  # init_kwargs: saved with it
        super().__init__(video_processor, tokenizer, chat_template=chat_template or CHAT_TEMPLATE, **kwargs)

    @staticmethod
    def _single_token_id(tokenizer, text: str, name: str) -> int:
        ids = tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(
                f"{name}={text!r} must be one token of the tokenizer, but it encodes to {len(ids)} tokens {ids}. "
                f"Add it as a special token (`tokenizer.add_special_tokens`) or choose another {name}."
            )
        return ids[0]

    def __call__(self, images=None, text=None, videos=None, **kwargs: Unpack[StormProcessorKwargs]) -> BatchFeature:
        if images is None and text is None and videos is None:
            raise ValueError("StormProcessor needs text, videos or images (or several of them).")
        output_kwargs = self._merge_kwargs(
            StormProcessorKwargs, tokenizer_init_kwargs=self.tokenizer.init_kwargs, **kwargs
        )
        return_mm_types = pop_processing_flag(output_kwargs, "return_mm_token_type_ids")
        pop_processing_flag(output_kwargs, "return_text_replacement_offsets")  # offsets refer to the unexpanded text
        pop_processing_flag(output_kwargs, "sanitize_control_tokens")  # marked text is always encoded as plain text
        text_kwargs, videos_kwargs = output_kwargs["text_kwargs"], output_kwargs["videos_kwargs"]
        return_tensors = text_kwargs.pop("return_tensors", None)
        videos_kwargs.pop("return_tensors", None)
        padding = {key: text_kwargs.pop(key, None) for key in ("padding", "max_length", "pad_to_multiple_of")}
        padding_side = text_kwargs.pop("padding_side", None) or self.tokenizer.padding_side
        if text_kwargs.pop("truncation", None):
            raise ValueError(
                "StormProcessor does not truncate: cutting the text could cut a video's tokens. Shorten the text or "
                "sample fewer frames instead."
            )

        texts = None if text is None else [text] if isinstance(text, str) else list(text)
        rows = None if texts is None else [self._encode(sample, text_kwargs) for sample in texts]
        if rows is not None:  # checked before any video is decoded
            num_videos = 0 if videos is None else len(make_video_list(videos))
            self._check_placeholders(rows, num_videos, 0 if images is None else len(make_image_list(images)))
        data, replacements = {}, {self.video_token_id: [], self.image_token_id: []}
        if videos is not None:
            processed, replacements[self.video_token_id] = self._process_videos(videos, **videos_kwargs)
            data.update(processed)
        if images is not None:
            processed, replacements[self.image_token_id] = self._process_images(images)
            data.update(processed)
        if rows is not None:
            rows = self._expand(rows, replacements)
            data.update(self._pad(rows, padding_side=padding_side, **padding))
            if return_mm_types:
                data["mm_token_type_ids"] = self.create_mm_token_type_ids(data["input_ids"])
        return BatchFeature(data, tensor_type=return_tensors, skip_tensor_conversion=self.skip_tensor_conversion)

    # ----- multimodal inputs and their placeholder tokens (transformers' processor hooks) -----

    def _process_videos(self, videos, **kwargs) -> tuple[dict, list[str]]:
        """Pixel inputs of every video, and the text each video's placeholder becomes (`replace_video_token`)."""
        processed = dict(self.video_processor(videos, **kwargs))
        # the stride a `max_video_tokens` budget chose (in `processed`), or the one the caller gave
        stride = processed.get("temporal_sampling_stride", kwargs.get("temporal_sampling_stride"))
        if stride is not None:
            processed["temporal_sampling_stride"] = int(stride)
        kwargs["temporal_sampling_stride"] = stride
        count = len(processed["video_frame_counts"])
        return processed, [self.replace_video_token(processed, index, **kwargs) for index in range(count)]

    def _process_images(self, images, **kwargs) -> tuple[dict, list[str]]:
        """Pixel inputs of every image, and the text each image's placeholder becomes (`replace_image_token`)."""
        processed = dict(self.video_processor.preprocess_images(images))
        count = len(processed["pixel_values"])
        return processed, [self.replace_image_token(processed, index) for index in range(count)]

    def replace_video_token(self, video_inputs: dict, video_idx: int, **kwargs) -> str:
        """What video `video_idx`'s placeholder becomes: per kept temporal slot, its video tokens and a separator."""
        frames = int(video_inputs["video_frame_counts"][video_idx])
        slots = self.video_processor.num_video_slots(frames, kwargs.get("temporal_sampling_stride"))
        return (self.video_token * self.video_processor.tokens_per_frame + self.frame_separator) * slots

    def replace_image_token(self, image_inputs: dict, image_idx: int, **kwargs) -> str:
        """What an image's placeholder becomes: one slot of image tokens and a separator."""
        return self.image_token * self.video_processor.tokens_per_frame + self.frame_separator

    def _get_num_multimodal_tokens(self, image_sizes=None, video_sizes=None, **kwargs) -> MultiModalData:
        """Tokens each placeholder becomes, separators included: `video_sizes` holds (frames delivered, height,
        width) per video (the count after sampling), `image_sizes` (height, width) per image; `kwargs` may hold the
        `temporal_sampling_stride`."""
        per_slot = self.video_processor.tokens_per_frame + 1
        data = {}
        if video_sizes is not None:
            stride = kwargs.get("temporal_sampling_stride")
            data["num_video_tokens"] = [
                self.video_processor.num_video_slots(size[0], stride) * per_slot for size in video_sizes
            ]
        if image_sizes is not None:
            data["num_image_tokens"] = [per_slot] * len(image_sizes)
        return MultiModalData(**data)

    # ----- text -----

    def _encode(self, text: str, text_kwargs: dict) -> dict[str, list]:
        """One text's tokens (placeholders not yet expanded) and the tokenizer's other per-token outputs.

        Marked text (see the module docstring) is encoded as plain text and its markers are dropped; offsets still
        refer to `text`, markers included. A chat with marked text is encoded without added special tokens: its
        template writes them.
        """
        if CONTROL_MARK_START not in text and CONTROL_MARK_END not in text:
            return dict(self.tokenizer(text, **text_kwargs))
        if text_kwargs.get("add_special_tokens", True) and self.tokenizer.num_special_tokens_to_add():
            raise ValueError(
                "Text with marked plain-text spans comes from a chat template, which writes the special tokens "
                "itself: pass add_special_tokens=False."
            )
        kwargs = {**text_kwargs, "add_special_tokens": False}
        row = {key: [] for key in self.tokenizer("", **kwargs)}
        spans, position = [], 0
        for match in _MARKED.finditer(text):
            spans.append((position, match.start(), False))
            if match.group(1):
                spans.append((match.start(1), match.end(1), True))
            position = match.end()
        spans.append((position, len(text), False))
        for start, end, as_text in spans:
            if start == end:
                continue
            encoding = self.tokenizer(text[start:end], split_special_tokens=as_text, **kwargs)
            if as_text and {self.video_token_id, self.image_token_id} & set(encoding["input_ids"]):
                raise ValueError(
                    f"{text[start:end]!r} cannot be encoded as plain text: make the placeholders special tokens of "
                    "the tokenizer (`AddedToken(..., special=True)`)."
                )
            for key, values in encoding.items():
                if key == "offset_mapping":
                    values = [(first + start, last + start) for first, last in values]
                row[key].extend(values)
        return row

    def _check_placeholders(self, rows: list[dict], num_videos: int, num_images: int) -> None:
        for token_id, token, given, kind in (
            (self.video_token_id, self.video_token, num_videos, "video"),
            (self.image_token_id, self.image_token, num_images, "image"),
        ):
            per_text = [row["input_ids"].count(token_id) for row in rows]
            if sum(per_text) != given:
                raise ValueError(
                    f"The text has {sum(per_text)} {token} placeholder(s) (per text: {per_text}) but {given} {kind}(s) "
                    f"were passed. Put one {token} where each {kind} goes, in the order the {kind}s are passed."
                )

    def _expand(self, rows: list[dict], replacements: dict[int, list[str]]) -> list[dict]:
        """Each placeholder token replaced by its replacement's tokens, in order across the batch; every other key
        (attention mask, offsets, ...) repeats the placeholder's own value over its expansion."""
        encoded = {}
        for texts in replacements.values():
            for replacement in texts:
                if replacement not in encoded:
                    encoded[replacement] = self.tokenizer.encode(replacement, add_special_tokens=False)
        pending = {token_id: iter(texts) for token_id, texts in replacements.items()}
        expanded = []
        for row in rows:
            out = {key: [] for key in row}
            for position, token_id in enumerate(row["input_ids"]):
                ids = encoded[next(pending[token_id])] if token_id in pending else [token_id]
                for key in row:
                    out[key].extend(ids if key == "input_ids" else [row[key][position]] * len(ids))
            expanded.append(out)
        return expanded

    def _pad(self, rows: list[dict], padding, max_length, pad_to_multiple_of, padding_side) -> dict:
        """Pad with the tokenizer; offsets (which it does not pad) get (0, 0) on the same side."""
        offsets = [row.pop("offset_mapping") for row in rows] if "offset_mapping" in rows[0] else None
        batch = dict(
            self.tokenizer.pad(
                rows,
                padding=padding or False,
                max_length=max_length,
                pad_to_multiple_of=pad_to_multiple_of,
                padding_side=padding_side,
                return_attention_mask="attention_mask" in rows[0],
            )
        )
        if offsets is not None:
            batch["offset_mapping"] = [
                pad + row if padding_side == "left" else row + pad
                for row, ids in zip(offsets, batch["input_ids"])
                for pad in [[(0, 0)] * (len(ids) - len(row))]
            ]
        return batch

    @property
    def model_input_names(self) -> list[str]:
        return [
            "input_ids", "attention_mask", "pixel_values_videos", "video_frame_counts", "temporal_sampling_stride",
            "pixel_values",
        ]


__all__ = ["StormProcessor", "CHAT_TEMPLATE"]
