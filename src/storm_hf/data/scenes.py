"""Scenes of the synthetic video QA data: coloured shapes on a plain background, drawn frame by frame with numpy.

A scene is a background grey level and a list of sprites. Each sprite says, for every frame, whether it is
visible, where its top-left corner is and which colour it has; `render` turns that into `(T, H, W, 3)` uint8.
"""

from dataclasses import dataclass

import numpy as np

# Saturated colours whose hues stay apart after resizing and yuv420p chroma subsampling.
PALETTE = {
    "red": (230, 30, 30),
    "green": (30, 200, 40),
    "blue": (40, 70, 255),
    "yellow": (240, 220, 20),
    "cyan": (20, 220, 230),
    "magenta": (230, 40, 230),
}
COLOURS = tuple(PALETTE)
# What a flashing sprite turns into for one frame: far from every palette colour in at least one channel.
FLASH_RGB = (255, 255, 255)
SHAPES = ("square", "circle", "triangle")
# The background is a dark grey, its level drawn per video from this range.
BACKGROUND_LEVELS = (20, 60)


@dataclass
class Sprite:
    """One shape; every array has one entry per frame."""

    shape: str
    size: int  # side of the bounding square, px
    visible: np.ndarray  # (T,) bool
    top_left: np.ndarray  # (T, 2) int (y, x)
    rgb: np.ndarray  # (T, 3) uint8


def object_size(frame_size: int) -> int:
    """Side of a sprite's bounding square: a quarter of the frame, so one fits in any cell of a 2x2 grid."""
    return frame_size // 4


def shape_mask(shape: str, size: int) -> np.ndarray:
    """`(size, size)` bool mask of `shape`."""
    centre = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size]  # (size, size) each
    if shape == "square":
        return np.ones((size, size), dtype=bool)
    if shape == "circle":
        return (y - centre) ** 2 + (x - centre) ** 2 <= (size / 2) ** 2
    if shape == "triangle":  # apex at the top, base along the bottom row
        return np.abs(x - centre) <= (y + 1) / 2
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def static_sprite(shape: str, size: int, num_frames: int, top_left, colour: str, shown: slice = slice(None)) -> Sprite:
    """A sprite that stays at `top_left` in `colour`, visible on the frames `shown` (all by default)."""
    visible = np.zeros(num_frames, dtype=bool)
    visible[shown] = True
    return Sprite(
        shape=shape,
        size=size,
        visible=visible,
        top_left=np.tile(np.asarray(top_left, dtype=int), (num_frames, 1)),  # (T, 2)
        rgb=np.tile(np.asarray(PALETTE[colour], dtype=np.uint8), (num_frames, 1)),  # (T, 3)
    )


def grid_positions(rng: np.random.Generator, frame_size: int, count: int) -> list[tuple[int, int]]:
    """Top-left corners of `count` sprites in distinct cells of a 2x2 grid, jittered inside their cells."""
    cell, size = frame_size // 2, object_size(frame_size)
    cells = rng.permutation(4)[:count]
    return [
        (int(c // 2 * cell + rng.integers(0, cell - size + 1)), int(c % 2 * cell + rng.integers(0, cell - size + 1)))
        for c in cells
    ]


def render(sprites: list[Sprite], num_frames: int, frame_size: int, background: int) -> np.ndarray:
    """Draw the sprites (later ones on top) on a grey background: `(T, H, W, 3)` uint8 RGB."""
    frames = np.full((num_frames, frame_size, frame_size, 3), background, dtype=np.uint8)
    for sprite in sprites:
        mask = shape_mask(sprite.shape, sprite.size)
        for t in np.flatnonzero(sprite.visible):
            y, x = sprite.top_left[t]
            frames[t, y : y + sprite.size, x : x + sprite.size][mask] = sprite.rgb[t]
    return frames
