"""A STORM Hub folder with random weights, a tokenizer trained on given texts and a matching processor: what tests
and serving benchmarks load when the weights do not matter, only that every engine gets the same ones."""

from collections.abc import Iterable
from pathlib import Path

import torch

from ..conversion.hub_export import export_hub_folder
from ..modeling.configuration_storm import StormConfig
from ..modeling.modeling_storm import StormForConditionalGeneration
from ..processors.processing_storm import StormProcessor
from ..tokenization import build_tokenizer
from .tokens import video_processor_for


def write_random_storm(out_dir: str | Path, config: StormConfig, texts: Iterable[str], seed: int = 0) -> Path:
    """Export a STORM built from `config` (vocabulary and placeholder ids taken from a tokenizer trained on `texts`)
    with weights drawn from `seed` to `out_dir`."""
    tokenizer = build_tokenizer(texts, vocab_size=300)
    processor = StormProcessor(video_processor_for(config), tokenizer)
    config.text_config.vocab_size = len(tokenizer)
    config.video_token_id, config.image_token_id = processor.video_token_id, processor.image_token_id
    torch.manual_seed(seed)
    model = StormForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return export_hub_folder(model, processor, out_dir, overwrite=True)
