"""Helpers for the processor tests. Test videos show their own frame index as a 4x4 grid of coloured cells (16 bits):
amber for a 1, blue for a 0. A test reads back exactly which frame it got, after lossy encoding, resizing and
normalisation; a bit is read by comparing red with blue, so frames whose channels come out swapped (BGR for RGB) read
as the wrong frame, and `assert_shows` checks every channel of every cell against what was drawn."""

import numpy as np

SIDE = 32  # default frame side in pixels; 8x8 cells survive H.264 at default quality
CELLS = 4
ONE = (235, 170, 40)  # amber: red high, blue low
ZERO = (40, 90, 215)  # blue: red low, blue high
# Largest difference, per channel, between a decoded cell centre and its drawn colour: lossy codecs and 4:2:0 chroma
# stay well inside it, a channel swap or a neighbouring frame's cell (a difference of 125-195) does not.
COLOUR_TOLERANCE = 45

# The tiny model's geometry: 32 px frames, 8 px patches -> a 4x4 grid -> 2x2 after downsampling = 4 tokens per slot.
TINY_VIDEO_PROCESSOR = {"size": {"height": 32, "width": 32}, "patch_size": 8, "temporal_pool_size": 2}

CORPUS = [
    "Describe the video in detail.\nWhat happens at the end?",
    "A cat jumps over the fence, then a dog runs after it.\n\nThe end.",
    "How many people are in the image? There are 3 people.",
]


def cell_colours(indices) -> np.ndarray:
    """(N, 4, 4, 3) uint8: the colour drawn in each cell of frames `indices`."""
    bits = (np.asarray(indices)[:, None] >> np.arange(CELLS * CELLS)) & 1  # (N, 16)
    colours = np.where(bits[..., None] == 1, np.array(ONE, np.uint8), np.array(ZERO, np.uint8))  # (N, 16, 3)
    return colours.reshape(-1, CELLS, CELLS, 3)


def index_frames(num_frames: int, height: int = SIDE, width: int = SIDE) -> np.ndarray:
    """(T, height, width, 3) uint8 RGB: frame i shows bit b of i in cell b (row-major), amber for 1, blue for 0."""
    cells = cell_colours(np.arange(num_frames))  # (T, 4, 4, 3)
    return cells.repeat(height // CELLS, axis=1).repeat(width // CELLS, axis=2)


def cell_centres(frame: np.ndarray) -> np.ndarray:
    """(4, 4, 3): the colour at the centre of each cell of an (H, W, 3) frame."""
    height, width = frame.shape[:2]
    return frame[height // CELLS // 2 :: height // CELLS, width // CELLS // 2 :: width // CELLS][:CELLS, :CELLS]


def frame_index(frame: np.ndarray) -> int:
    """The index drawn by `index_frames`, from an (H, W, 3) RGB frame with values in [0, 255]."""
    centres = cell_centres(np.asarray(frame, dtype=np.float64))
    bits = centres[..., 0] > centres[..., 2]  # red above blue: a 1
    return int((bits.reshape(-1) << np.arange(CELLS * CELLS)).sum())


def assert_shows(frames, indices) -> None:
    """Each (H, W, 3) RGB frame of `frames` shows, channel by channel, the frame `index_frames` drew at its index."""
    frames, indices = np.asarray(frames, dtype=np.float64), np.asarray(indices)
    assert len(frames) == len(indices), (len(frames), len(indices))
    for frame, index, drawn in zip(frames, indices.tolist(), cell_colours(indices)):
        error = np.abs(cell_centres(frame) - drawn).max()
        assert error <= COLOUR_TOLERANCE, f"frame {index}: a cell's colour is off by {error:.0f} from what was drawn"


def to_pixels(pixel_values) -> np.ndarray:
    """Normalised model input (T, 3, H, W) with SigLIP's mean = std = 0.5 back to (T, H, W, 3) RGB in [0, 255]."""
    return ((pixel_values.permute(0, 2, 3, 1).numpy() * 0.5 + 0.5) * 255).clip(0, 255)


def pixel_indices(pixel_values) -> list[int]:
    """Frame indices read back from normalised model input (T, 3, H, W)."""
    return [frame_index(frame) for frame in to_pixels(pixel_values)]
