"""Helpers for the processor tests. Test videos show their own frame index as a 4x4 grid of black/white cells
(16 bits), so a test reads back exactly which frame it got, after lossy encoding, resizing and normalisation."""

import numpy as np

SIDE = 32  # frame side in pixels; 8x8 cells survive H.264 at default quality
CELLS = 4

# The tiny model's geometry: 32 px frames, 8 px patches -> a 4x4 grid -> 2x2 after downsampling = 4 tokens per slot.
TINY_VIDEO_PROCESSOR = {"size": {"height": 32, "width": 32}, "patch_size": 8, "temporal_pool_size": 2}

CORPUS = [
    "Describe the video in detail.\nWhat happens at the end?",
    "A cat jumps over the fence, then a dog runs after it.\n\nThe end.",
    "How many people are in the image? There are 3 people.",
]


def index_frames(num_frames: int, side: int = SIDE) -> np.ndarray:
    """(T, side, side, 3) uint8: frame i shows bit b of i as cell b (row-major), white for 1."""
    bits = (np.arange(num_frames)[:, None] >> np.arange(CELLS * CELLS)) & 1  # (T, 16)
    cells = bits.reshape(num_frames, CELLS, CELLS).astype(np.uint8) * 255
    frames = cells.repeat(side // CELLS, axis=1).repeat(side // CELLS, axis=2)  # (T, side, side)
    return np.repeat(frames[..., None], 3, axis=-1)


def frame_index(frame: np.ndarray) -> int:
    """The index drawn by `index_frames`, from an (H, W, 3) frame with values in [0, 255]."""
    height, width = frame.shape[:2]
    centers = frame[height // CELLS // 2 :: height // CELLS, width // CELLS // 2 :: width // CELLS].mean(axis=-1)
    return int(((centers.reshape(-1) > 127) << np.arange(CELLS * CELLS)).sum())


def pixel_indices(pixel_values) -> list[int]:
    """Frame indices read back from normalised model input (T, 3, H, W) with SigLIP's mean = std = 0.5."""
    frames = ((pixel_values.permute(0, 2, 3, 1).numpy() * 0.5 + 0.5) * 255).clip(0, 255)
    return [frame_index(frame) for frame in frames]


