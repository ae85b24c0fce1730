"""A tiny STORM folder (model + processor) and a tiny video instruction dataset with real video files.

The processor matches the tiny model: 32 px frames, 8 px patches, 2x2 downsampling -> 4 tokens per temporal slot,
k = 4. The dataset mixes 8-frame and 4-frame videos, an image row, a multi-turn row, and one row whose question is
far longer than the others (for the max-length tests).
"""

import json

import PIL.Image
import pytest
import torch

from storm_hf import StormForConditionalGeneration
from storm_hf.data.video_writer import write_video
from storm_hf.processors.processing_storm import StormProcessor
from storm_hf.processors.video_processing_storm import StormVideoProcessor
from storm_hf.tokenization import build_tokenizer
from storm_hf.training.data import StormDataCollator, load_training_dataset
from training_rows import NUM_FRAMES, ROWS, corpus, moving_square

@pytest.fixture(scope="session")
def data_file(tmp_path_factory):
    """train.jsonl with its videos/ and images/ beside it (paths in the rows are relative to it)."""
    root = tmp_path_factory.mktemp("instruct")
    write_video(root / "videos/left.mp4", moving_square(NUM_FRAMES, -1, 0), fps=8)
    write_video(root / "videos/up.mp4", moving_square(NUM_FRAMES, 0, -1), fps=8)
    write_video(root / "videos/short.mp4", moving_square(4, 1, 1, colour=(250, 250, 250)), fps=8)
    (root / "images").mkdir()
    PIL.Image.fromarray(moving_square(1, 0, 0, colour=(30, 30, 220))[0]).save(root / "images/blue.png")
    path = root / "train.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return path


@pytest.fixture(scope="session")
def dataset(data_file):
    return load_training_dataset(data_file)


@pytest.fixture(scope="session")
def processor():
    video_processor = StormVideoProcessor(
        size={"height": 32, "width": 32}, patch_size=8, downsample=2, temporal_pool_size=4
    )
    return StormProcessor(video_processor, build_tokenizer(corpus(), vocab_size=320))


@pytest.fixture
def storm_folder(tmp_path, tiny_config, processor):
    """A saved tiny STORM (two bidirectional Mamba blocks) with its processor."""
    config = tiny_config(text={"vocab_size": len(processor.tokenizer)})
    config.video_token_id = processor.video_token_id
    config.image_token_id = processor.image_token_id
    torch.manual_seed(0)
    folder = tmp_path / "tiny-storm"
    StormForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture
def model(storm_folder):
    return StormForConditionalGeneration.from_pretrained(storm_folder)


@pytest.fixture(scope="session")
def max_length(processor, dataset):
    """A max_length (in tokens, NUM_FRAMES frames per video) that every row fits except the long one."""
    collator = StormDataCollator(processor, max_length=10**6, frame_kwargs={"num_frames": NUM_FRAMES})
    lengths = {row["id"]: len(collator.encode(row)["input_ids"]) for row in dataset}
    fitting = max(length for name, length in lengths.items() if name != "long")
    assert lengths["long"] > fitting
    return fitting
