"""StormProcessor: a tokenizer and a StormVideoProcessor, producing model-ready inputs for STORM.

Each video placeholder in the text becomes exactly the tokens the model fills: for every temporal slot the model
keeps (after temporal pooling k and test-time sampling s), `tokens_per_frame` video tokens followed by one frame
separator token; an image becomes `tokens_per_frame` image tokens and one separator. The expansion happens on token
ids, so the separator stays one token whatever text follows the placeholder.

Hub code: imports only the standard library, torch, transformers' public API and its sibling modules.
"""

import math

from transformers import BatchFeature, ProcessorMixin
from transformers.processing_utils import ProcessingKwargs, Unpack

from .video_processing_storm import StormVideosKwargs, make_image_list, make_video_list

# The placeholders a prompt holds for each video / image, as Qwen2-VL spells them (the project's one definition).
VIDEO_TOKEN, IMAGE_TOKEN = "<|video_pad|>", "<|image_pad|>"

# Qwen2-style: a default system turn, `<|im_start|>role\n...<|im_end|>\n` per message, one placeholder per video or
# image block. Assistant turns are marked for `return_assistant_tokens_mask`.
CHAT_TEMPLATE = (
    "{%- macro render(content) -%}"
    "{%- if content is string -%}{{ content }}"
    "{%- else -%}{%- for block in content -%}"
    "{%- if block['type'] == 'video' -%}{{ '" + VIDEO_TOKEN + "' }}"
    "{%- elif block['type'] == 'image' -%}{{ '" + IMAGE_TOKEN + "' }}"
    "{%- elif block['type'] == 'text' -%}{{ block['text'] }}"
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
    `video_frame_counts` (num_videos,), `pixel_values` (num_images, 3, H, W), and `temporal_sampling_stride` (an int)
    when the caller passed one or a `max_video_tokens` budget chose it, so that `model.generate(**inputs)` uses the
    same stride the tokens were counted with.

    Batches are padded on the left by default (ready for generation).

    Args:
        video_processor ([`StormVideoProcessor`]): frames, sampling and the model's token geometry.
        tokenizer: a tokenizer that knows `video_token` and `image_token` as single tokens.
        chat_template (`str`, *optional*): defaults to the Qwen2-style `CHAT_TEMPLATE`.
        video_token (`str`, defaults to `"<|video_pad|>"`), image_token (`str`, defaults to `"<|image_pad|>"`):
            placeholders in the text, repeated into the tokens the model fills.
        frame_separator (`str`, defaults to `"\n"`): text of the one token that ends every temporal slot.
    """

    valid_processor_kwargs = StormProcessorKwargs

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
        if text is None:
            raise ValueError(
                f"StormProcessor needs `text`, with one {self.video_token} per video and one {self.image_token} per "
                "image."
            )
        texts = [text] if isinstance(text, str) else list(text)
        videos = make_video_list(videos) if videos is not None else []
        images = make_image_list(images) if images is not None else []
        self._check_placeholders(texts, len(videos), len(images))
        output_kwargs = self._merge_kwargs(
            StormProcessorKwargs, tokenizer_init_kwargs=self.tokenizer.init_kwargs, **kwargs
        )
        videos_kwargs = output_kwargs["videos_kwargs"]
        videos_kwargs.pop("return_tensors", None)
        data, expansions = {}, {self.video_token_id: [], self.image_token_id: []}
        if videos:
            data.update(self.video_processor(videos, **videos_kwargs))
            # the stride a `max_video_tokens` budget chose (in `data`), or the one the caller gave
            stride = data.get("temporal_sampling_stride", videos_kwargs.get("temporal_sampling_stride"))
            if stride is not None:
                data["temporal_sampling_stride"] = stride
            expansions[self.video_token_id] = [
                self._expansion(self.video_token_id, self.video_processor.num_video_slots(count, stride))
                for count in data["video_frame_counts"].tolist()
            ]
        if images:
            data.update(self.video_processor.preprocess_images(images))
            expansions[self.image_token_id] = [self._expansion(self.image_token_id, 1)] * len(images)
        text_kwargs = output_kwargs["text_kwargs"]
        return_tensors = text_kwargs.pop("return_tensors", None)
        return_mm_types = text_kwargs.pop("return_mm_token_type_ids", output_kwargs.get("return_mm_token_type_ids", False))
        text_kwargs.pop("return_text_replacement_offsets", None)  # offsets already refer to the unexpanded text
        data.update(self._tokenize(texts, expansions, text_kwargs, return_mm_types))
        return BatchFeature(
            data, tensor_type=return_tensors, skip_tensor_conversion=["video_metadata", "temporal_sampling_stride"]
        )

    def _check_placeholders(self, texts: list[str], num_videos: int, num_images: int) -> None:
        for token, given, kind in ((self.video_token, num_videos, "video"), (self.image_token, num_images, "image")):
            per_text = [sample.count(token) for sample in texts]
            if sum(per_text) != given:
                raise ValueError(
                    f"The text has {sum(per_text)} {token} placeholder(s) (per text: {per_text}) but {given} {kind}(s) "
                    f"were passed. Put one {token} where each {kind} goes, in the order the {kind}s are passed."
                )

    def _expansion(self, token_id: int, slots: int) -> list[int]:
        """`slots` times: `tokens_per_frame` placeholder tokens, then one frame separator."""
        return ([token_id] * self.video_processor.tokens_per_frame + [self.frame_separator_id]) * slots

    def _tokenize(
        self, texts: list[str], expansions: dict[int, list[list[int]]], text_kwargs: dict, return_mm_types: bool
    ) -> dict:
        """Tokenize with placeholders as single tokens, expand them in place, then pad every row alike."""
        if text_kwargs.pop("truncation", None):
            raise ValueError(
                "StormProcessor does not truncate: cutting the text could cut a video's tokens. Shorten the text or "
                "sample fewer frames instead."
            )
        padding = text_kwargs.pop("padding", False)
        max_length = text_kwargs.pop("max_length", None)
        pad_to_multiple_of = text_kwargs.pop("pad_to_multiple_of", None)
        padding_side = text_kwargs.pop("padding_side", None) or self.tokenizer.padding_side
        encoding = self.tokenizer(texts, **text_kwargs)
        pending = {token_id: iter(rows) for token_id, rows in expansions.items()}
        rows = []
        for sample in range(len(texts)):
            # Every other key (attention mask, offsets, ...) repeats the placeholder's own value over its expansion.
            row = {key: [] for key in encoding}
            for position, token_id in enumerate(encoding["input_ids"][sample]):
                ids = next(pending[token_id]) if token_id in pending else [token_id]
                for key in encoding:
                    row[key].extend(ids if key == "input_ids" else [encoding[key][sample][position]] * len(ids))
            if return_mm_types:
                row["mm_token_type_ids"] = self.create_mm_token_type_ids([row["input_ids"]])[0]
            rows.append(row)
        return self._pad(rows, padding, max_length, pad_to_multiple_of, padding_side)

    def _pad(self, rows: list[dict], padding, max_length, pad_to_multiple_of, padding_side) -> dict:
        longest = max(len(row["input_ids"]) for row in rows)
        target = max_length if padding == "max_length" and max_length else longest
        if pad_to_multiple_of:
            target = math.ceil(target / pad_to_multiple_of) * pad_to_multiple_of
        fill = {"input_ids": self.tokenizer.pad_token_id, "offset_mapping": (0, 0)}
        batch = {key: [] for key in rows[0]}
        for row in rows:
            missing = max(target - len(row["input_ids"]), 0) if padding and padding != "do_not_pad" else 0
            for key, values in row.items():
                pad = [fill.get(key, 0)] * missing
                batch[key].append(pad + values if padding_side == "left" else values + pad)
        return batch

    @property
    def model_input_names(self) -> list[str]:
        return [
            "input_ids", "attention_mask", "pixel_values_videos", "video_frame_counts", "temporal_sampling_stride",
            "pixel_values",
        ]


__all__ = ["StormProcessor", "CHAT_TEMPLATE"]
