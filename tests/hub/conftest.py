"""A tiny STORM exported as a Hub folder, and a real video file to ask about."""

import pytest
import torch
from hub_testing import CORPUS, moving_square

from storm_hf import StormForConditionalGeneration, StormProcessor, StormVideoProcessor
from storm_hf.conversion.hub_export import export_hub_folder
from storm_hf.conversion.model_card import CardInfo
from storm_hf.data.video_writer import write_video
from storm_hf.tokenization import build_tokenizer


@pytest.fixture(scope="session")
def tiny_model_and_processor(tiny_config):
    tokenizer = build_tokenizer(CORPUS, vocab_size=300)
    processor = StormProcessor(
        StormVideoProcessor(size={"height": 32, "width": 32}, patch_size=8, temporal_pool_size=4), tokenizer
    )
    config = tiny_config(text={"vocab_size": len(tokenizer)})
    config.video_token_id, config.image_token_id = processor.video_token_id, processor.image_token_id
    torch.manual_seed(0)
    model = StormForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, processor


@pytest.fixture(scope="session")
def hub_folder(tiny_model_and_processor, tmp_path_factory):
    model, processor = tiny_model_and_processor
    folder = tmp_path_factory.mktemp("hub") / "tiny-storm"
    return export_hub_folder(model, processor, folder, max_shard_size="100KB", card=CardInfo(license="apache-2.0"))


@pytest.fixture(scope="session")
def video_file(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("videos") / "video.mp4", moving_square(), fps=8)
