"""A tiny STORM folder (model + processor) and a tiny video instruction dataset with real video files.

The processor matches the tiny model: 32 px frames, 8 px patches, 2x2 downsampling -> 4 tokens per temporal slot,
k = 4. The dataset mixes 8-frame and 4-frame videos, an image row, a multi-turn row, and one row whose question is
far longer than the others (for the max-length tests).
"""

import json

import numpy as np
import PIL.Image
import pytest
import torch

from storm_hf import StormForConditionalGeneration
from storm_hf.data.video_writer import write_video
from storm_hf.processors.processing_storm import StormProcessor
from storm_hf.processors.video_processing_storm import StormVideoProcessor
from storm_hf.tokenization import build_tokenizer
from storm_hf.training.data import StormDataCollator, load_training_dataset

NUM_FRAMES = 8
LONG_QUESTION = "Describe every frame of the clip, " + "and the red square in each one, " * 40


def user(*content):
    return {"role": "user", "content": list(content)}


def assistant(text):
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def text(value):
    return {"type": "text", "text": value}


VIDEO, IMAGE = {"type": "video"}, {"type": "image"}
ROWS = [
    {
        "id": "left",
        "video": "videos/left.mp4",
        "messages": [user(VIDEO, text("Which way does the red square move?")), assistant("left")],
    },
    {
        "id": "two-turns",
        "video": "videos/up.mp4",
        "messages": [
            user(VIDEO, text("What colour is the square?")),
            assistant("red"),
            user(text("Which way does it move?")),
            assistant("up"),
        ],
    },
    {
        "id": "short",
        "video": "videos/short.mp4",
        "messages": [user(VIDEO, text("How many frames are bright?")), assistant("two")],
    },
    {
        "id": "image",
        "image": "images/blue.png",
        "messages": [user(IMAGE, text("What colour is the shape?")), assistant("blue")],
    },
    {"id": "long", "video": "videos/left.mp4", "messages": [user(VIDEO, text(LONG_QUESTION)), assistant("left")]},
]


def moving_square(num_frames: int, dx: int, dy: int, colour=(220, 30, 30)) -> np.ndarray:
    """(T, 32, 32, 3) uint8: an 8 px square moving by (dx, dy) px per frame on grey."""
    frames = np.full((num_frames, 32, 32, 3), 90, dtype=np.uint8)
    for t in range(num_frames):
        x, y = 12 + dx * t, 12 + dy * t
        frames[t, max(y, 0) : y + 8, max(x, 0) : x + 8] = colour
    return frames


def _corpus() -> list[str]:
    texts = ["You are a helpful assistant.", "system user assistant"]
    for row in ROWS:
        for message in row["messages"]:
            texts += [item["text"] for item in message["content"] if item["type"] == "text"]
    return texts


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
    return StormProcessor(video_processor, build_tokenizer(_corpus(), vocab_size=320))


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
