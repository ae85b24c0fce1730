"""The decode stage: a test video, and decoding + preprocessing it the way users do (StormVideoProcessor)."""

from pathlib import Path

import numpy as np
import torch

from ..data.video_writer import write_video
from ..processors.video_processing_storm import StormVideoProcessor


def _camera_like_frames(num_frames: int, width: int, height: int, fps: float):
    """Moving gradients, a moving square and light noise: motion everywhere, so the codec works as on footage."""
    rows, cols = np.mgrid[0:height, 0:width]
    levels = 244  # values stay below 244, so adding the noise (< 12) never wraps around
    noise = np.random.default_rng(0).integers(0, 12, size=(4, height, width, 3), dtype=np.uint8)
    side = height // 4
    for index in range(num_frames):
        frame = np.empty((height, width, 3), np.uint8)
        frame[..., 0] = (cols * levels // width + 2 * index) % levels
        frame[..., 1] = (rows * levels // height + index) % levels
        frame[..., 2] = ((cols + rows) * levels // (width + height) + 3 * index) % levels
        left = int((width - side) * (0.5 + 0.5 * np.sin(index / fps)))
        top = int((height - side) * (0.5 + 0.5 * np.cos(index / fps)))
        frame[top : top + side, left : left + side] = levels - 1
        yield frame + noise[index % len(noise)]


def write_test_video(path: str | Path, seconds: float, width: int = 640, height: int = 360, fps: float = 30.0) -> Path:
    """An H.264 video of `seconds` seconds, a keyframe every second."""
    num_frames = round(seconds * fps)
    return write_video(path, _camera_like_frames(num_frames, width, height, fps), fps=fps, gop_size=round(fps))


def decode(processor: StormVideoProcessor, video: str | Path, num_frames: int) -> torch.Tensor:
    """`num_frames` frames spread over the video, decoded, resized and normalised: (1, T, 3, S, S) float32."""
    return processor(str(video), num_frames=num_frames, return_tensors="pt")["pixel_values_videos"]
