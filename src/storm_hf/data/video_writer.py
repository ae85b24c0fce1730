"""Encode numpy frames into a real video file with PyAV (used by the data generator, tests and benchmarks)."""

import itertools
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Sequence

import av
import numpy as np


def write_video(
    path: str | Path,
    frames: np.ndarray | Iterable[np.ndarray],
    fps: float = 30.0,
    codec: str = "libx264",
    gop_size: int = 30,
    timestamps: Sequence[float] | None = None,
    bit_rate: int | None = None,
    options: dict | None = None,
) -> Path:
    """Write `frames` `(T, H, W, 3)` uint8 RGB to `path`; the container follows the suffix (.mp4, .mkv, ...).

    `frames` may also be an iterable of `(H, W, 3)` uint8 frames, encoded as they come (long videos need not fit in
    memory). `gop_size` is the keyframe interval. `timestamps` (seconds, strictly increasing) make a
    variable-frame-rate file; otherwise frame i is shown at i / fps. H and W must be even for yuv420p codecs.
    The file is reproducible: the same arguments write the same bytes.
    """
    if isinstance(frames, np.ndarray):
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
        if timestamps is not None and len(timestamps) != len(frames):
            raise ValueError(f"got {len(timestamps)} timestamps for {len(frames)} frames")
        height, width = frames.shape[1:3]
    else:
        frames = iter(frames)
        first = next(frames)
        height, width = first.shape[:2]
        frames = itertools.chain([first], frames)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # With explicit timestamps use a fine time base so every timestamp is representable.
    time_base = Fraction(1, 90000) if timestamps is not None else Fraction(1, round(fps * 1000)) * 1000
    # bitexact: the same frames give the same bytes (no random Matroska UIDs, no muxer version or creation date)
    with av.open(str(path), mode="w", container_options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        stream.codec_context.gop_size = gop_size
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        codec_options = {"bf": "0"} if codec == "libx264" else {}
        if codec == "libx264":
            codec_options.update({"keyint_min": str(gop_size), "sc_threshold": "0"})
        codec_options.update(options or {})
        stream.options = codec_options
        for index, array in enumerate(frames):
            if array.shape != (height, width, 3) or array.dtype != np.uint8:
                raise ValueError(f"frame {index} must be uint8 {(height, width, 3)}, got {array.dtype} {array.shape}")
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            seconds = timestamps[index] if timestamps is not None else index / fps
            frame.pts = round(seconds / time_base)
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
