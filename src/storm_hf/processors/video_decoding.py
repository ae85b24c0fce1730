"""Exact, sparse frame reading with PyAV.

A video is indexed once by demuxing (packets only, nothing decoded): the presentation timestamp of every frame and
which frames are keyframes. Frame `i` is the i-th frame in presentation order, whatever the container claims about
frame counts or frame rates. Reading frames then seeks to the keyframe before a wanted frame and decodes forward, or
keeps decoding forward from the last wanted frame when that is cheaper (`plan_seeks`); decoded frames are matched to
the index by timestamp, so every returned frame is exactly the one asked for, also in variable-frame-rate files.

Hub code: imports only the standard library, numpy and PyAV (lazily).
"""

import io
import logging
import os
import urllib.request
from dataclasses import dataclass
from fractions import Fraction

import numpy as np


logger = logging.getLogger(__name__)

# A seek (demuxer repositioning and decoder flush, plus a keyframe's extra cost over a forward frame) costs about as
# much CPU as decoding this many frames forward: 0.4-0.6 measured on H.264 at 360p and 720p, rounded up
# (benchmarks/video_decode.py, docs/video-input.md).
SEEK_COST_FRAMES = 1

# Container formats FFmpeg uses for still images (it opens a PNG or JPEG as a one-frame "video").
_IMAGE_FORMAT_SUFFIX = "_pipe"
_IMAGE_FORMATS = {"image2"}


class VideoDecodingError(ValueError):
    """A video cannot be read; the message names the input and what to do about it."""


def describe_source(source) -> str:
    """How error messages name a video input."""
    if isinstance(source, (str, os.PathLike)):
        return repr(os.fspath(source))
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes of video data>"
    name = getattr(source, "name", None)
    return f"<file object {name!r}>" if name else f"<{type(source).__name__} object>"


def is_video_source(value) -> bool:
    """Whether `value` names encoded video data (a path or URL, bytes, or a binary file object) rather than frames."""
    return isinstance(value, (str, os.PathLike, bytes, bytearray, memoryview)) or hasattr(value, "read")


@dataclass(frozen=True)
class VideoIndex:
    """Where every frame of a video stream is, read by demuxing.

    `frame_pts` (F,) holds presentation timestamps in presentation order (units of `time_base`); `start_points` (K,)
    the ascending frame positions decoding can start from: the keyframes, and always 0.
    """

    frame_pts: np.ndarray
    start_points: np.ndarray
    time_base: Fraction
    duration: float
    width: int
    height: int

    @property
    def num_frames(self) -> int:
        return len(self.frame_pts)

    @property
    def frame_times(self) -> np.ndarray:
        """(F,) seconds from the first frame to each frame."""
        return (self.frame_pts - self.frame_pts[0]).astype(np.float64) * float(self.time_base)

    @property
    def fps(self) -> float:
        """Average frame rate over the whole video."""
        return self.num_frames / self.duration


def plan_seeks(wanted: np.ndarray, start_points: np.ndarray, seek_cost_frames: int = SEEK_COST_FRAMES) -> list:
    """For each wanted frame (ascending, unique), the start point to seek to first, or None to keep decoding forward.

    After a wanted frame `p` the decoder sits at `p + 1`; reaching the next wanted frame `w` from there decodes
    `w - p` frames, while seeking to the last start point `s <= w` decodes `w - s + 1` frames plus the seek. Seek when
    that skips more than `seek_cost_frames` frames. Sparse frames in a short-GOP video seek every time; frames that
    are dense relative to the keyframe interval decode straight through.
    """
    plan, position = [], None
    starts = start_points[np.searchsorted(start_points, wanted, side="right") - 1]
    for target, start in zip(wanted.tolist(), starts.tolist()):
        seek = position is None or start - position - 1 > seek_cost_frames
        plan.append(start if seek else None)
        position = target
    return plan


class VideoReader:
    """Reads frames of one video by their exact index in presentation order.

    `source`: a path, an http(s) URL, bytes, or a binary file object. Use as a context manager, or call `close()`.
    """

    def __init__(self, source):
        self.name = describe_source(source)
        self._container = _open_container(source, self.name)
        try:
            self._stream = _video_stream(self._container, self.name)
            self.index = _read_index(self._container, self._stream, self.name)
        except BaseException:
            self._container.close()
            raise
        self._positions = {pts: position for position, pts in enumerate(self.index.frame_pts.tolist())}
        self._decoded_any = False

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def read(self, indices) -> np.ndarray:
        """Frames `indices` (any order, repeats allowed) as an RGB array (len(indices), H, W, 3) uint8.

        Only the distinct wanted frames are kept in memory; every other decoded frame is dropped at once. Raises
        `VideoDecodingError` when a wanted frame cannot be decoded (a damaged file).
        """
        indices = np.asarray(indices, dtype=np.int64)
        if indices.ndim != 1 or indices.size == 0:
            raise ValueError(f"indices must be a non-empty 1-D sequence of frame numbers, got shape {indices.shape}.")
        outside = indices[(indices < 0) | (indices >= self.index.num_frames)]
        if outside.size:
            last = self.index.num_frames - 1
            raise IndexError(f"Frame {outside[0]} asked from {self.name}, which has frames 0..{last}.")
        wanted, inverse = np.unique(indices, return_inverse=True)
        width, height = self.index.width, self.index.height
        frames = np.empty((len(wanted), height, width, 3), dtype=np.uint8)  # (N, H, W, 3)
        decoded, position, frame = iter(()), -1, None
        for slot, (target, start) in enumerate(zip(wanted.tolist(), plan_seeks(wanted, self.index.start_points))):
            if start is not None:
                decoded = self._decode_from(start)
            for frame in decoded:
                position = self._positions.get(frame.pts, -1)
                if position >= target:
                    break
            if position != target:
                raise self._missing_frame(target)
            frames[slot] = frame.to_ndarray(format="rgb24", width=width, height=height)
        return frames if np.array_equal(wanted, indices) else frames[inverse]

    def _decode_from(self, start: int):
        """Intact frames from the start point at position `start` on, in presentation order.

        Damaged data is skipped: packets the decoder rejects, and frames it flags as corrupt (error-concealed).
        """
        import av

        self._container.seek(int(self.index.frame_pts[start]), stream=self._stream, backward=True)
        try:
            for packet in self._container.demux(self._stream):
                try:
                    for frame in packet.decode():
                        if not frame.is_corrupt:
                            self._decoded_any = True
                            yield frame
                except av.error.InvalidDataError:
                    continue
        except av.FFmpegError:
            return

    def _missing_frame(self, position: int) -> VideoDecodingError:
        if not self._decoded_any:
            return VideoDecodingError(
                f"No frame of {self.name} could be decoded: its video data is corrupt. Check that it plays, or "
                "re-encode it (e.g. `ffmpeg -i in.mp4 out.mp4`)."
            )
        seconds = self.index.frame_times[position]
        return VideoDecodingError(
            f"Frame {position} (at {seconds:.2f}s) of {self.name} could not be decoded: the file is damaged around "
            "that point. Sample fewer frames or a lower fps so that only earlier frames are needed, or repair / "
            "re-encode the file (e.g. `ffmpeg -i in.mp4 out.mp4`)."
        )


def _open_container(source, name: str):
    import av

    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if path.startswith(("http://", "https://")):
            with urllib.request.urlopen(path) as response:
                source = io.BytesIO(response.read())
        elif not os.path.isfile(path):
            raise FileNotFoundError(
                f"Video file not found: {name} (relative paths start at {os.getcwd()!r}). Check the path."
            )
        else:
            source = path
    elif isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    try:
        return av.open(source, mode="r")
    except av.FFmpegError as error:
        raise VideoDecodingError(
            f"Cannot open {name} as a video ({error}). It is not a video file, or it is corrupt or truncated; "
            "check that it plays, or re-encode it (e.g. `ffmpeg -i in.mp4 out.mp4`)."
        ) from error


def _video_stream(container, name: str):
    format_name = container.format.name
    if format_name in _IMAGE_FORMATS or format_name.endswith(_IMAGE_FORMAT_SUFFIX):
        raise VideoDecodingError(
            f"{name} is a still image ({format_name}), not a video. Pass it as an image: "
            '`{"type": "image", ...}` in a chat message, or `images=` to the processor.'
        )
    if not container.streams.video:
        kinds = sorted({stream.type for stream in container.streams}) or ["nothing"]
        raise VideoDecodingError(
            f"{name} has no video stream (it contains {', '.join(kinds)}). Pass a file with a video track."
        )
    return container.streams.video[0]


def _read_index(container, stream, name: str) -> VideoIndex:
    """Demux every packet of `stream` once (no decoding) to learn each frame's timestamp and the keyframes."""
    import av

    pts, keyframe, durations = [], [], []
    try:
        for packet in container.demux(stream):
            if packet.size == 0:  # the flush packet at the end of the stream
                continue
            if packet.pts is None:
                raise VideoDecodingError(
                    f"{name} has video frames without timestamps, so frames cannot be located. Put the stream in a "
                    "container first, e.g. `ffmpeg -i in.h264 -c copy out.mp4`."
                )
            pts.append(packet.pts)
            keyframe.append(packet.is_keyframe)
            durations.append(packet.duration or 0)
    except av.FFmpegError as error:
        logger.warning("%s is damaged after frame %d (%s); only the frames before can be read.", name, len(pts), error)
    if not pts:
        raise VideoDecodingError(
            f"{name} has a video stream but no frames could be read: the file is empty or corrupt. Check that it "
            "plays, or re-encode it."
        )
    order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")
    frame_pts = np.asarray(pts, dtype=np.int64)[order]  # (F,)
    starts = np.flatnonzero(np.asarray(keyframe)[order])
    time_base = stream.time_base
    # The last frame lasts its packet's duration, else the median frame interval.
    last_duration = np.asarray(durations)[order][-1] or (np.median(np.diff(frame_pts)) if len(pts) > 1 else 0)
    duration = float((frame_pts[-1] - frame_pts[0] + last_duration) * time_base)
    if duration <= 0:
        rate = stream.average_rate or stream.guessed_rate or 1
        duration = len(pts) / float(rate)
    declared = float(stream.duration * time_base) if stream.duration else (container.duration or 0) / 1e6
    if declared > duration + max(0.05 * declared, 2 * duration / len(pts)):  # beyond rounding and a stray frame
        logger.warning(
            "%s declares %.1fs of video but has frames for only %.1fs: it seems truncated; frames are sampled from "
            "what it has.", name, declared, duration
        )
    return VideoIndex(
        frame_pts=frame_pts,
        start_points=np.union1d([0], starts),
        time_base=Fraction(time_base),
        duration=duration,
        width=stream.codec_context.width,
        height=stream.codec_context.height,
    )
