"""Question types of the synthetic video QA data: each draws a scene whose answer needs more than one frame.

A generator gets the answer it must produce (the dataset builder balances answers), a random generator, the
frame count, the frame size and the temporal pooling window k, and returns the sprites, the question and the
frames whose content decides the answer. Events are placed in frame units, so the same kind of scene renders
at any frame count that divides by k. docs/synthetic-data.md explains why each type needs time.
"""

import itertools
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .scenes import COLOURS, FLASH_RGB, SHAPES, Sprite, grid_positions, object_size, static_sprite

DIRECTIONS = ("left", "right", "up", "down")
COUNTS = ("one", "two", "three", "four")
# Share of first-appearance scenes whose two objects both appear inside one pooling window.
SAME_WINDOW_FRACTION = 0.5

DIRECTION_TEMPLATE = "Which way does the {colour} {shape} move?"
FIRST_APPEARANCE_TEMPLATE = "Which colour appears first, {0} or {1}?"
FLASH_COUNT_TEMPLATE = "How many times does the {colour} {shape} flash?"
SINGLE_FRAME_COLOUR_TEXT = "What colour is the shape seen in only one frame?"


@dataclass
class Question:
    question_type: str
    text: str
    answer: str
    sprites: list[Sprite]
    event_frames: list[int]  # frames whose content decides the answer


def _other_colour(rng: np.random.Generator, colour: str) -> str:
    return str(rng.choice([c for c in COLOURS if c != colour]))


def _shape(rng: np.random.Generator) -> str:
    return str(rng.choice(SHAPES))


def direction(rng, answer, num_frames, frame_size, pool_window) -> Question:
    """One shape glides across half the frame at constant speed; which way?"""
    size, distance = object_size(frame_size), frame_size // 2
    colour, shape = str(rng.choice(COLOURS)), _shape(rng)
    start = rng.integers(0, frame_size - size - distance + 1)
    along = start + np.round(np.linspace(0, distance, num_frames)).astype(int)  # (T,)
    if answer in ("left", "up"):
        along = along[::-1]
    axis = 1 if answer in ("left", "right") else 0  # top_left is (y, x)
    sprite = static_sprite(shape, size, num_frames, (0, 0), colour)
    sprite.top_left[:, axis] = along
    sprite.top_left[:, 1 - axis] = rng.integers(0, frame_size - size + 1)
    text = DIRECTION_TEMPLATE.format(colour=colour, shape=shape)
    return Question("direction", text, answer, [sprite], list(range(num_frames)))


def first_appearance(rng, answer, num_frames, frame_size, pool_window) -> Question:
    """Two shapes each show up for k/2 frames; which colour appears first?

    In about half the scenes both showings lie inside one pooling window (onsets one or two frames apart at
    k=4), where each colour fills the same share of the window and averaging leaves no trace of the order.
    """
    dwell = pool_window // 2
    other = _other_colour(rng, answer)
    same_window = rng.random() < SAME_WINDOW_FRACTION
    # Onsets (a, b), a < b, with both showings inside the video; keep those whose showings share a window
    # (the first starts in the window where the second ends) or those that do not, as drawn.
    pairs = [
        (a, b)
        for a, b in itertools.combinations(range(num_frames - dwell + 1), 2)
        if (a // pool_window == (b + dwell - 1) // pool_window) == same_window
    ]
    first, second = pairs[rng.integers(len(pairs))]
    sprites = [
        static_sprite(_shape(rng), object_size(frame_size), num_frames, top_left, colour, slice(onset, onset + dwell))
        for colour, onset, top_left in zip((answer, other), (first, second), grid_positions(rng, frame_size, 2))
    ]
    named = (answer, other) if rng.random() < 0.5 else (other, answer)
    text = FIRST_APPEARANCE_TEMPLATE.format(*named)
    return Question("first_appearance", text, answer, sprites, [int(first), int(second)])


def flash_count(rng, answer, num_frames, frame_size, pool_window) -> Question:
    """A shape stays put and turns white for single frames, with at least one normal frame between flashes."""
    count = COUNTS.index(answer) + 1
    # Uniform over sets of `count` pairwise non-adjacent frames: choose from T - count + 1, then spread out.
    frames = np.sort(rng.choice(num_frames - count + 1, size=count, replace=False)) + np.arange(count)
    colour, shape = str(rng.choice(COLOURS)), _shape(rng)
    sprite = static_sprite(shape, object_size(frame_size), num_frames, grid_positions(rng, frame_size, 1)[0], colour)
    sprite.rgb[frames] = FLASH_RGB
    text = FLASH_COUNT_TEMPLATE.format(colour=colour, shape=shape)
    return Question("flash_count", text, answer, [sprite], [int(f) for f in frames])


def single_frame_colour(rng, answer, num_frames, frame_size, pool_window) -> Question:
    """A shape of another colour stays on screen throughout; the asked-for shape is shown on one frame only."""
    size = object_size(frame_size)
    steady_at, flash_at = grid_positions(rng, frame_size, 2)
    frame = int(rng.integers(num_frames))
    sprites = [
        static_sprite(_shape(rng), size, num_frames, steady_at, _other_colour(rng, answer)),
        static_sprite(_shape(rng), size, num_frames, flash_at, answer, slice(frame, frame + 1)),
    ]
    return Question("single_frame_colour", SINGLE_FRAME_COLOUR_TEXT, answer, sprites, [frame])


@dataclass(frozen=True)
class QuestionType:
    answers: tuple[str, ...]
    generate: Callable[..., Question]
    texts: tuple[str, ...]  # every question text this type can write


_COLOURED_SHAPES = [{"colour": c, "shape": s} for c in COLOURS for s in SHAPES]
QUESTION_TYPES = {
    "direction": QuestionType(
        DIRECTIONS, direction, tuple(DIRECTION_TEMPLATE.format(**f) for f in _COLOURED_SHAPES)
    ),
    "first_appearance": QuestionType(
        COLOURS,
        first_appearance,
        tuple(FIRST_APPEARANCE_TEMPLATE.format(*pair) for pair in itertools.permutations(COLOURS, 2)),
    ),
    "flash_count": QuestionType(
        COUNTS, flash_count, tuple(FLASH_COUNT_TEMPLATE.format(**f) for f in _COLOURED_SHAPES)
    ),
    "single_frame_colour": QuestionType(COLOURS, single_frame_colour, (SINGLE_FRAME_COLOUR_TEXT,)),
}


def answer_vocabulary() -> list[str]:
    """Every answer any question can have, each once, in a fixed order."""
    return list(dict.fromkeys(a for qtype in QUESTION_TYPES.values() for a in qtype.answers))


def question_texts() -> list[str]:
    """Every question text the generator can write."""
    return [text for qtype in QUESTION_TYPES.values() for text in qtype.texts]


def vocabulary_words() -> list[str]:
    """Sorted words and punctuation marks of all questions and answers (what a word-level tokenizer needs)."""
    return sorted({w for text in question_texts() + answer_vocabulary() for w in re.findall(r"\w+|[^\w\s]", text)})
