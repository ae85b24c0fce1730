"""Shared by the Hub tests: the tiny tokenizer's corpus, the question, and a video to ask about."""

import numpy as np

CORPUS = [
    "What happens in this video? A square moves to the right, then it stops.",
    "Which colour appears first? red green blue left right up down one two three",
]
QUESTION = "What happens in this video?"


def moving_square(num_frames: int = 24, side: int = 32) -> np.ndarray:
    frames = np.zeros((num_frames, side, side, 3), dtype=np.uint8)
    for index in range(num_frames):
        column = index % (side - 8)
        frames[index, 12:20, column : column + 8] = (230, 40, 40)
    return frames
