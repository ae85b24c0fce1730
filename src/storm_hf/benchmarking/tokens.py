"""Visual token accounting and benchmark prompts, in StormProcessor's layout.

StormProcessor expands a video placeholder into, for every temporal slot kept, `tokens_per_frame` video tokens
(filled with the model's features) followed by one frame-separator token ("\n"). So the LLM reads
`slots * (tokens_per_frame + 1)` visual tokens; the counts come from the video processor's own arithmetic.
"""

from dataclasses import asdict, dataclass

import torch

from ..modeling.configuration_storm import StormConfig
from ..processors.video_processing_storm import StormVideoProcessor
from .scales import Setting

SEPARATOR_ID = 198  # Qwen2's "\n", StormProcessor's default frame separator; any text token costs the same
TEXT_BEFORE, TEXT_AFTER = 16, 32  # text tokens around the video: a chat header, then the question


def video_processor_for(config: StormConfig) -> StormVideoProcessor:
    """The video processor matching `config`: frame size, patch size and the pooling that sets token counts."""
    vision, temporal = config.vision_config, config.temporal_config
    return StormVideoProcessor(
        size={"height": vision.image_size, "width": vision.image_size},
        patch_size=vision.patch_size,
        downsample=temporal.downsample,
        spatial_pool_size=temporal.spatial_pool_size,
        temporal_pool_size=temporal.temporal_pool_size,
    )


@dataclass(frozen=True)
class TokenCount:
    slots: int  # temporal slots that reach the LLM
    tokens_per_slot: int  # video tokens per slot (the reduced grid)

    @property
    def video_tokens(self) -> int:
        """Rows of the model's video features."""
        return self.slots * self.tokens_per_slot

    @property
    def llm_visual_tokens(self) -> int:
        """Video tokens plus one separator per slot: what the video adds to the LLM's sequence."""
        return self.slots * (self.tokens_per_slot + 1)

    def as_dict(self) -> dict:
        return {**asdict(self), "video_tokens": self.video_tokens, "llm_visual_tokens": self.llm_visual_tokens}


def count_tokens(config: StormConfig, setting: Setting, num_frames: int) -> TokenCount:
    processor = video_processor_for(config)
    slots = processor.num_video_slots(num_frames, setting.temporal_sampling_stride)
    return TokenCount(slots, processor.tokens_per_frame)


def prompt_ids(config: StormConfig, count: TokenCount) -> torch.Tensor:
    """(1, TEXT_BEFORE + llm_visual_tokens + TEXT_AFTER): text, the expanded video placeholder, text."""
    text = list(range(1, TEXT_BEFORE + TEXT_AFTER + 1))
    video = ([config.video_token_id] * count.tokens_per_slot + [SEPARATOR_ID]) * count.slots
    return torch.tensor([text[:TEXT_BEFORE] + video + text[TEXT_BEFORE:]])
