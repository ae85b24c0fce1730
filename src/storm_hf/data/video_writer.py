"""Encode numpy frames into a real video file with PyAV (used by the data generator, tests and benchmarks)."""

import itertools
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Sequence

import av
import numpy as np

AUDIO_RATE = 16000  # samples per second of the optional audio track
AUDIO_TONE = 440.0  # Hz


def write_video(
    path: str | Path,
    frames: np.ndarray | Iterable[np.ndarray],
    fps: float = 30.0,
    codec: str = "libx264",
    gop_size: int = 30,
    timestamps: Sequence[float] | None = None,
    bit_rate: int | None = None,
    options: dict | None = None,
    pix_fmt: str = "yuv420p",
    rotation: int = 0,
    audio: bool = False,
    container_options: dict | None = None,
) -> Path:
    """Write `frames` `(T, H, W, 3)` uint8 RGB to `path`; the container follows the suffix (.mp4, .mkv, .ts, ...).

    `frames` may also be an iterable of `(H, W, 3)` uint8 frames, encoded as they come (long videos need not fit in
    memory). `gop_size` is the keyframe interval, kept fixed (no extra keyframes at scene cuts). `timestamps`
    (seconds, strictly increasing) make a variable-frame-rate file; otherwise frame i is shown at i / fps.

    The encoder otherwise keeps its own defaults, as files users have are written: libx264 uses 3 B-frames as a
    pyramid, libx265 B-frames and open GOPs, libvpx-vp9 and SVT-AV1 hidden alternate-reference frames. `options` go
    to the encoder (e.g. `{"bf": "0"}` for no B-frames), `container_options` to the muxer (e.g.
    `{"movflags": "frag_keyframe+empty_moov+default_base_moof"}` for fragmented MP4). `pix_fmt` is the encoded pixel
    format (`yuv420p10le` for 10-bit, `yuv422p`, `yuv444p`, ...); H and W must be even for subsampled formats.
    `rotation` (degrees counter-clockwise, a multiple of 90) is stored in the container's display matrix: a player
    turns the picture, the stored frames stay as given. `audio` adds a
    mono AAC track with a tone as long as the video.

    The same arguments write the same bytes (the muxer writes no random IDs or dates), with one caveat: x264's default
    macroblock-tree rate control makes its output differ now and then between runs (from 1 file in 100 on a busy
    machine to most files late in a long test session, measured); `options={"x264-params": "mbtree=0"}` rules that
    out. x264's output also depends on its thread count, by default one and a half per CPU core.
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
    muxer_options = {"fflags": "+bitexact", **(container_options or {})}
    with av.open(str(path), mode="w", container_options=muxer_options) as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = width, height
        stream.pix_fmt = pix_fmt
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        stream.codec_context.gop_size = gop_size
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        stream.options = {**_fixed_gop_options(codec, gop_size), **(options or {})}
        if rotation:
            stream.set_display_rotation(rotation)
        tone = _AudioTone(container) if audio else None
        for index, array in enumerate(frames):
            if array.shape != (height, width, 3) or array.dtype != np.uint8:
                raise ValueError(f"frame {index} must be uint8 {(height, width, 3)}, got {array.dtype} {array.shape}")
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            seconds = timestamps[index] if timestamps is not None else index / fps
            frame.pts = round(seconds / time_base)
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
            if tone is not None:
                tone.write_until(seconds)
        for packet in stream.encode():
            container.mux(packet)
        if tone is not None:
            tone.finish(seconds + 1 / fps)
    return path


def _fixed_gop_options(codec: str, gop_size: int) -> dict:
    """Encoder options that keep keyframes exactly `gop_size` frames apart (no scene-cut keyframes)."""
    if codec == "libx264":
        return {"keyint_min": str(gop_size), "sc_threshold": "0"}
    if codec == "libx265":
        return {"x265-params": f"keyint={gop_size}:min-keyint={gop_size}:scenecut=0:log-level=error"}
    return {}


class _AudioTone:
    """A mono AAC track holding a sine tone, written in step with the video so the muxer interleaves them."""

    def __init__(self, container):
        self.stream = container.add_stream("aac", rate=AUDIO_RATE)
        self.stream.layout = "mono"
        self.container = container
        self.samples = 0
        self.frame_size = 1024  # AAC's frame

    def write_until(self, seconds: float) -> None:
        while self.samples < seconds * AUDIO_RATE:
            time = (self.samples + np.arange(self.frame_size)) / AUDIO_RATE
            wave = (0.2 * np.sin(2 * np.pi * AUDIO_TONE * time)).astype(np.float32)[None]  # (1, samples)
            frame = av.AudioFrame.from_ndarray(wave, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = AUDIO_RATE, self.samples
            self.samples += self.frame_size
            for packet in self.stream.encode(frame):
                self.container.mux(packet)

    def finish(self, seconds: float) -> None:
        self.write_until(seconds)
        for packet in self.stream.encode():
            self.container.mux(packet)
