"""STORM's multimodal processing in vLLM: StormProcessor decides everything, vLLM only places the tokens.

Videos reach the processor as vLLM users send them: a file path or bytes in `multi_modal_data` (offline), a
`video_url` fetched by vLLM and kept encoded by the `storm` video loader (server), or frames already decoded (an
array, a list of images, or `(frames, metadata)`). Encoded videos are decoded by `StormVideoProcessor` with PyAV,
exactly the frames its sampling picks, and its per-request settings come from `mm_processor_kwargs`. The number of
placeholder tokens of each video comes from the same processor (`replace_video_token`, `replace_image_token`), so the
prompt vLLM builds is token for token the one `StormProcessor` builds for transformers.
"""

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from transformers import BatchFeature
from vllm.multimodal.inputs import MultiModalFieldConfig, MultiModalKwargsItems
from vllm.multimodal.media import MediaWithBytes
from vllm.multimodal.parse import MultiModalDataItems, MultiModalDataParser, VideoProcessorItems
from vllm.multimodal.processing import (
    BaseDummyInputsBuilder,
    BaseMultiModalProcessor,
    BaseProcessingInfo,
    PromptReplacement,
    PromptUpdate,
    PromptUpdateDetails,
)

from .video_loader import DeferredVideo

# What a request may set in mm_processor_kwargs (flat, or under "videos_kwargs").
FRAME_SETTINGS = ("num_frames", "fps", "min_frames", "max_frames", "temporal_sampling_stride")


def _is_encoded(video) -> bool:
    """A video still encoded: a path, bytes, or what the `storm` loader kept of a fetched `video_url`."""
    if isinstance(video, MediaWithBytes):
        return isinstance(video.media, tuple) and isinstance(video.media[0], DeferredVideo)
    return isinstance(video, (str, os.PathLike, bytes, bytearray))


def _encoded_bytes(video) -> bytes:
    if isinstance(video, MediaWithBytes):
        return video.original_bytes
    if isinstance(video, (bytes, bytearray)):
        return bytes(video)
    path = Path(video)
    if not path.is_file():
        raise ValueError(
            f"No video file at {os.fspath(video)!r}. multi_modal_data takes a local path, the file's bytes, or frames; "
            "send URLs as a chat message's video_url."
        )
    return path.read_bytes()


class StormDataParser(MultiModalDataParser):
    """vLLM's parser, plus videos that are still encoded: they become their bytes (also what the cache hashes)."""

    def _parse_video_data(self, data):
        if _is_encoded(data):
            data = [data]
        if not isinstance(data, list) or not any(map(_is_encoded, data)):
            return super()._parse_video_data(data)
        videos, metadata = [], []
        for item in data:
            if _is_encoded(item):
                videos.append(_encoded_bytes(item))
                metadata.append(None)
            else:  # frames, parsed as vLLM parses them
                parsed = super()._parse_video_data([item])
                videos.append(parsed.data[0])
                metadata.append(parsed.metadata[0])
        return VideoProcessorItems(videos, metadata=metadata)


class StormProcessingInfo(BaseProcessingInfo):
    def get_data_parser(self) -> MultiModalDataParser:
        return StormDataParser(
            expected_hidden_size=self._get_expected_hidden_size(),
            allow_missing_mm_embeddings=self.allow_missing_mm_embeddings,
        )

    def get_supported_mm_limits(self) -> Mapping[str, int | None]:
        return {"video": None, "image": None}

    def frame_settings(self, mm_kwargs: Mapping[str, object]) -> dict:
        """The request's frame settings over the engine's (`--mm-processor-kwargs`), flat or under videos_kwargs."""
        merged = dict(self.ctx.get_merged_mm_kwargs(mm_kwargs))
        scoped = merged.pop("videos_kwargs", None) or {}
        settings = {**merged, **scoped}
        unknown = sorted(set(settings) - set(FRAME_SETTINGS))
        if unknown:
            raise ValueError(
                f"STORM does not take mm_processor_kwargs {unknown}; it takes {list(FRAME_SETTINGS)} (flat or under "
                "videos_kwargs)."
            )
        return settings

    def slot_tokens(self) -> int:
        """Prompt tokens of one temporal slot: its video tokens and the frame separator."""
        return self.get_hf_processor().video_processor.tokens_per_frame + 1

    def most_video_frames(self, seq_len: int, mm_counts: Mapping[str, int]) -> int:
        """Frames of the longest video the processor delivers whose tokens, with `mm_counts`' others, fit `seq_len`."""
        video_processor = self.get_hf_processor().video_processor
        pool = video_processor.temporal_pool_size
        budget = seq_len - mm_counts.get("image", 0) * self.slot_tokens()  # an image takes one slot
        slots = budget // max(mm_counts.get("video", 0), 1) // self.slot_tokens()
        return max(min(video_processor.max_frames // pool, slots), 1) * pool


class StormDummyInputsBuilder(BaseDummyInputsBuilder[StormProcessingInfo]):
    def get_dummy_text(self, mm_counts: Mapping[str, int]) -> str:
        processor = self.info.get_hf_processor()
        return processor.video_token * mm_counts.get("video", 0) + processor.image_token * mm_counts.get("image", 0)

    def get_dummy_mm_data(self, seq_len: int, mm_counts: Mapping[str, int], mm_options) -> dict:
        size = self.info.get_hf_processor().video_processor.size
        return {
            "video": self._get_dummy_videos(
                width=size.width,
                height=size.height,
                num_frames=self.info.most_video_frames(seq_len, mm_counts),
                num_videos=mm_counts.get("video", 0),
                overrides=mm_options.get("video"),
            ),
            "image": self._get_dummy_images(
                width=size.width,
                height=size.height,
                num_images=mm_counts.get("image", 0),
                overrides=mm_options.get("image"),
            ),
        }


class StormMultiModalProcessor(BaseMultiModalProcessor[StormProcessingInfo]):
    def _apply_hf_processor_main(self, mm_items: MultiModalDataItems, hf_kwargs: Mapping[str, object]) -> BatchFeature:
        """Videos and images through StormVideoProcessor, with the request's frame settings."""
        video_processor = self.info.get_hf_processor().video_processor
        dtype = self.info.ctx.model_config.dtype
        data = {}
        videos = mm_items.get("video")
        if videos is not None and videos.get_count():
            settings = self.info.frame_settings(hf_kwargs)
            metadata = [entry or {} for entry in videos.metadata] if isinstance(videos.metadata, list) else None
            batch = video_processor(videos.get_all(), video_metadata=metadata, return_tensors="pt", **settings)
            counts = batch["video_frame_counts"]
            data["pixel_values_videos"] = torch.cat(
                [clip[:count] for clip, count in zip(batch["pixel_values_videos"], counts.tolist())]
            ).to(dtype)  # (sum T, 3, H, W)
            data["video_frame_counts"] = counts
            stride = settings.get("temporal_sampling_stride", video_processor.temporal_sampling_stride)
            data["temporal_sampling_stride"] = torch.full_like(counts, stride)
        images = mm_items.get("image")
        if images is not None and images.get_count():
            data["pixel_values"] = video_processor.preprocess_images(images.get_all())["pixel_values"].to(dtype)
        return BatchFeature(data)

    def _get_mm_fields_config(
        self, hf_inputs: BatchFeature, hf_processor_mm_kwargs: Mapping[str, object]
    ) -> Mapping[str, MultiModalFieldConfig]:
        counts = hf_inputs.get("video_frame_counts", torch.empty(0, dtype=torch.long))
        return {
            "pixel_values_videos": MultiModalFieldConfig.flat_from_sizes("video", counts),
            "video_frame_counts": MultiModalFieldConfig.batched("video", keep_on_cpu=True),
            "temporal_sampling_stride": MultiModalFieldConfig.batched("video", keep_on_cpu=True),
            "pixel_values": MultiModalFieldConfig.batched("image"),
        }

    def _get_prompt_updates(
        self,
        mm_items: MultiModalDataItems,
        hf_processor_mm_kwargs: Mapping[str, object],
        out_mm_kwargs: MultiModalKwargsItems,
    ) -> Sequence[PromptUpdate]:
        processor = self.info.get_hf_processor()

        def encoded(replacement: str) -> list[int]:
            return processor.tokenizer.encode(replacement, add_special_tokens=False)

        def video_tokens(item_idx: int) -> PromptUpdateDetails:
            item = out_mm_kwargs["video"][item_idx]
            counts = {"video_frame_counts": [int(item["video_frame_counts"].data)]}
            stride = int(item["temporal_sampling_stride"].data)
            ids = encoded(processor.replace_video_token(counts, 0, temporal_sampling_stride=stride))
            return PromptUpdateDetails.select_token_id(ids, processor.video_token_id)

        def image_tokens(item_idx: int) -> PromptUpdateDetails:
            ids = encoded(processor.replace_image_token({}, item_idx))
            return PromptUpdateDetails.select_token_id(ids, processor.image_token_id)

        return [
            PromptReplacement(modality="video", target=[processor.video_token_id], replacement=video_tokens),
            PromptReplacement(modality="image", target=[processor.image_token_id], replacement=image_tokens),
        ]
