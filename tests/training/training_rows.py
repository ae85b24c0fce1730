"""The tiny video instruction dataset's rows and frames, shared by the training tests and their fixtures."""

import numpy as np

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


def corpus() -> list[str]:
    texts = ["You are a helpful assistant.", "system user assistant"]
    for row in ROWS:
        for message in row["messages"]:
            texts += [item["text"] for item in message["content"] if item["type"] == "text"]
    return texts
