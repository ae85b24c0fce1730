"""What a STORM folder takes from its pretrained parts besides weights: tokenizer, processor, generation settings.

Shared by `convert` (research checkpoints) and `init` (pretrained vision model + causal LM). A source is a local
folder or a Hub id.
"""

from pathlib import Path

from transformers import AutoImageProcessor, AutoTokenizer, GenerationConfig

from ..processors.processing_storm import StormProcessor
from ..processors.video_processing_storm import StormVideoProcessor
from .tokens import IMAGE_TOKEN, VIDEO_TOKEN, add_placeholder_tokens


def _lacks_file(source, name: str) -> bool:
    """Whether a local folder lacks `name` (a Hub id is asked instead)."""
    return Path(source).is_dir() and not (Path(source) / name).is_file()


def load_tokenizer(source) -> tuple[object, list[str]]:
    """The language model's tokenizer with the video / image placeholders added; returns (tokenizer, tokens added)."""
    tokenizer = AutoTokenizer.from_pretrained(source)
    return tokenizer, add_placeholder_tokens(tokenizer)


def load_generation_config(source) -> GenerationConfig | None:
    """The language model's generation settings (stop tokens, sampling defaults), if it has any."""
    if source is None or _lacks_file(source, "generation_config.json"):
        return None
    try:
        return GenerationConfig.from_pretrained(source)
    except OSError:  # a Hub model without generation_config.json
        return None


def _normalization(vision_source) -> dict:
    """image_mean / image_std of the vision model's image processor, when it ships one."""
    if vision_source is None or _lacks_file(vision_source, "preprocessor_config.json"):
        return {}
    try:
        image_processor = AutoImageProcessor.from_pretrained(vision_source)
    except OSError:
        return {}
    return {"image_mean": list(image_processor.image_mean), "image_std": list(image_processor.image_std)}


def build_processor(tokenizer, config, vision_source=None, max_frames: int | None = None) -> StormProcessor:
    """A StormProcessor for `config`: frames resized to the vision tower's input, token counts from the temporal
    encoder's downsampling and pooling, normalisation from the vision model's image processor when it has one.

    `max_frames` (default: the video processor's) is how many frames a video gets when the caller names no count.
    """
    temporal, vision = config.temporal_config, config.vision_config
    frames = {} if max_frames is None else {"max_frames": max_frames}
    video_processor = StormVideoProcessor(
        size={"height": vision.image_size, "width": vision.image_size},
        patch_size=vision.patch_size,
        downsample=temporal.downsample,
        temporal_pool_size=temporal.temporal_pool_size,
        spatial_pool_size=temporal.spatial_pool_size,
        **frames,
        **_normalization(vision_source),
    )
    return StormProcessor(
        video_processor=video_processor, tokenizer=tokenizer, video_token=VIDEO_TOKEN, image_token=IMAGE_TOKEN
    )
