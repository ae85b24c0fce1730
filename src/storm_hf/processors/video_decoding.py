"""Exact, sparse frame reading with PyAV.

A video is indexed once by demuxing (packets only, nothing decoded): each frame's presentation timestamp, its place
in decoding order, and which frames are keyframes. Frame `i` is the i-th frame in presentation order, the i-th frame
a plain decode of the whole stream returns, whatever the container claims about frame counts or frame rates.

Reading seeks to the keyframe before a wanted frame and decodes forward, or keeps decoding forward from the last
wanted frame when that is cheaper (`plan_seeks`). Demuxers do not seek alike: MP4 and Matroska find the keyframe at
or before a presentation timestamp, MPEG-TS finds any packet at or before a decoding timestamp (with B-frames, a
keyframe's presentation timestamp lies after packets that follow it). So every seek is checked: the first packet after
it must come at or before the wanted keyframe in decoding order. Otherwise the seek is retried by the keyframe's
decoding timestamp, then from earlier keyframes, and at last the file is decoded from its start. Decoded frames are
matched to the index by timestamp, so every returned frame is exactly the one asked for, also with B-frames, open GOPs
and variable frame rates. A frame is reported missing (a damaged file) only when decoding from the start of the file
does not produce it either.

AVI stores no presentation timestamps (FFmpeg guesses them, wrongly for H.264 with B-pyramids), and some streams
have none or repeated ones: there, frames are counted as a plain decode from the start of the file returns them.

Frames come out turned as a player shows them: the rotation of the container's display matrix is applied.

Hub code: imports only the standard library, numpy and PyAV (lazily).
"""

import http.client
import io
import itertools
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from fractions import Fraction

import numpy as np


logger = logging.getLogger(__name__)

# A seek (demuxer repositioning and decoder flush, plus a keyframe's extra cost over a forward frame) costs about as
# much CPU as decoding this many frames forward: 0.4-0.6 measured on H.264 at 360p and 720p, rounded up
# (benchmarks/video_decode.py, docs/video-input.md).
SEEK_COST_FRAMES = 1

# Seconds a video URL may stay silent (connecting, or between two pieces of data) before the download is abandoned.
URL_TIMEOUT = 30.0

# Container formats FFmpeg uses for still images (it opens a PNG or JPEG as a one-frame "video").
_IMAGE_FORMAT_SUFFIX = "_pipe"
_IMAGE_FORMATS = {"image2"}
# Containers that store no presentation timestamps: their frames are counted instead.
_UNTIMED_FORMATS = {"avi"}
# Earlier keyframes a seek steps back to when seeking to the wanted one overshoots, before decoding from the start.
_STEP_BACK = 2


class VideoDecodingError(ValueError):
    """A video cannot be read; the message names the input and what to do about it."""


class VideoDownloadError(OSError):
    """A video URL cannot be downloaded; the message names the URL, the cause and what to do about it."""


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
    the ascending frame positions decoding can start from: the keyframes, and always 0. `width` and `height` are the
    coded frame size (before the display rotation).

    How to get there: `decode_order` (F,) is each frame's place in decoding order (the order of its packet in the
    stream); `seek_timestamps` (K, 2) the presentation and decoding timestamps of the packet each start point's
    decoding begins with (the first packet of the stream for start point 0). `counted`: the stream has no usable
    presentation timestamps, so frames are told apart by counting them from the start of the stream.
    """

    frame_pts: np.ndarray
    start_points: np.ndarray
    time_base: Fraction
    duration: float
    width: int
    height: int
    decode_order: np.ndarray
    seek_timestamps: np.ndarray
    counted: bool

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

    `source`: a path, an http(s) URL, bytes, or a binary file object (read from its current position). A URL is
    downloaded into memory first; `timeout` is how many seconds the server may stay silent. Use as a context
    manager, or call `close()`.
    """

    def __init__(self, source, timeout: float = URL_TIMEOUT):
        self.name = describe_source(source)
        self._media = _media_opener(source, self.name, timeout)
        self._open()
        try:
            self.index = _read_index(self._container, self._stream, self.name)
        except BaseException:
            self._container.close()
            raise
        frame_pts = self.index.frame_pts.tolist()
        self._positions = {pts: position for position, pts in enumerate(frame_pts)}
        self._decode_ranks = dict(zip(frame_pts, self.index.decode_order.tolist()))
        self._decoded_any = False
        self._seek_by = 0  # which of a start point's seek timestamps to try first: 0 presentation, 1 decoding
        self._turns = None  # counter-clockwise quarter turns of the display rotation, from the first decoded frame

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def read(self, indices) -> np.ndarray:
        """Frames `indices` (any order, repeats allowed) as an RGB array (len(indices), H, W, 3) uint8, turned as
        displayed.

        Only the distinct wanted frames are kept in memory; every other decoded frame is dropped at once. Raises
        `VideoDecodingError` when a wanted frame cannot be decoded, not even from the start of the file (a damaged
        file).
        """
        indices = np.asarray(indices, dtype=np.int64)
        if indices.ndim != 1 or indices.size == 0:
            raise ValueError(f"indices must be a non-empty 1-D sequence of frame numbers, got shape {indices.shape}.")
        outside = indices[(indices < 0) | (indices >= self.index.num_frames)]
        if outside.size:
            last = self.index.num_frames - 1
            raise IndexError(f"Frame {outside[0]} asked from {self.name}, which has frames 0..{last}.")
        wanted, inverse = np.unique(indices, return_inverse=True)
        frames, decoded = None, iter(())
        for slot, (target, start) in enumerate(zip(wanted.tolist(), plan_seeks(wanted, self.index.start_points))):
            if start is not None:
                decoded = self._decode_from(start)
            frame = _frame_at(decoded, target)
            if frame is None:
                for decoded in self._retries(target):
                    frame = _frame_at(decoded, target)
                    if frame is not None:
                        break
                else:
                    raise self._missing_frame(target)
            picture = self._displayed(frame)
            if frames is None:
                frames = np.empty((len(wanted), *picture.shape), dtype=np.uint8)  # (N, H, W, 3)
            frames[slot] = picture
        return frames if np.array_equal(wanted, indices) else frames[inverse]

    def _open(self) -> None:
        self._container = _open_container(self._media(), self.name)
        try:
            self._stream = _video_stream(self._container, self.name)
        except BaseException:
            self._container.close()
            raise

    def _decode_from(self, start: int, from_the_start: bool = False):
        """(position, frame) for each decoded frame from the start point at position `start` on, in presentation order.

        Damaged data is skipped: packets the decoder rejects, and frames it flags as corrupt (error-concealed); a
        counted stream yields None in place of a corrupt frame, so that counting stays aligned.
        """
        import av

        counted = self.index.counted
        packets = self._packets_from(start, from_the_start or counted)
        position = 0  # counted streams are always decoded from their first packet
        try:
            for packet in packets:
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    continue
                for frame in frames:
                    self._decoded_any |= not frame.is_corrupt
                    if counted:
                        yield position, None if frame.is_corrupt else frame
                        position += 1
                    elif not frame.is_corrupt:
                        yield self._positions.get(frame.pts, -1), frame
        except av.FFmpegError:
            return

    def _retries(self, target: int):
        """Decodes that may still show `target` when decoding from its start point did not (a recovery point whose
        picture is not whole yet, a keyframe flag the decoder cannot start from, damage): from the start point before,
        then from the start of the file, as a plain decode does."""
        starts = self.index.start_points
        slot = int(np.searchsorted(starts, target, side="right")) - 1
        if slot >= 1:
            yield self._decode_from(int(starts[slot - 1]))
        yield self._decode_from(0, from_the_start=True)

    def _packets_from(self, start: int, from_the_start: bool):
        """The stream's packets from at or before the first packet start point `start` decodes, on."""
        import av

        if not from_the_start:
            slot = int(np.searchsorted(self.index.start_points, start))
            anchor = 0 if start == 0 else int(self.index.decode_order[start])  # the packet to land at or before
            for by, timestamp in self._seek_targets(slot):
                try:
                    self._container.seek(timestamp, stream=self._stream, backward=True)
                    packets = self._container.demux(self._stream)
                    first = next(packets, None)
                except av.FFmpegError:
                    continue
                landed = None if first is None else self._decode_ranks.get(first.pts)
                if landed is not None and landed <= anchor:
                    if by is not None:
                        self._seek_by = by
                    return itertools.chain([first], packets)
        # Demuxing from a freshly opened file is the one start that never misses.
        self._container.close()
        self._open()
        return self._container.demux(self._stream)

    def _seek_targets(self, slot: int):
        """(kind, timestamp) to seek to for start point `slot`, best first: its packet's presentation and decoding
        timestamps (kind 0 and 1, the kind that last landed first), then earlier start points' (kind None)."""
        timestamps = self.index.seek_timestamps
        targets = [(kind, int(timestamps[slot, kind])) for kind in (self._seek_by, 1 - self._seek_by)]
        targets += [(None, int(timestamps[earlier].min())) for earlier in range(slot - 1, slot - 1 - _STEP_BACK, -1)
                    if earlier >= 0]
        unique = []
        for kind, time in targets:
            if time not in (seen for _, seen in unique):
                unique.append((kind, time))
        return unique

    def _displayed(self, frame) -> np.ndarray:
        """A decoded frame as an (H, W, 3) uint8 RGB picture, turned as the display matrix says."""
        picture = frame.to_ndarray(format="rgb24", width=self.index.width, height=self.index.height)  # (H, W, 3)
        if self._turns is None:
            self._turns = _quarter_turns(frame)
        return np.rot90(picture, self._turns)  # (W, H, 3) after an odd number of turns

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


def _frame_at(decoded, target: int):
    """Advance `decoded` ((position, frame) pairs in presentation order) to `target`: its frame, or None when the
    decoder passed it or ran out."""
    for position, frame in decoded:
        if position >= target:
            return frame if position == target else None
    return None


def _quarter_turns(frame) -> int:
    """Counter-clockwise quarter turns that show a decoded frame as a player does: its display matrix's rotation,
    rounded to a multiple of 90 degrees (0 without a matrix).

    Read through `frame.rotation`: reading `frame.side_data` (where a mirroring would show) ties the frame into a
    reference cycle, and a decoded frame left for the garbage collector hangs a forked DataLoader worker that collects
    it.
    """
    return round(getattr(frame, "rotation", 0) / 90) % 4


def _media_opener(source, name: str, timeout: float):
    """A function returning what `av.open` reads, anew on each call: a path, or a binary file object at the start."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if path.startswith(("http://", "https://")):
            data = _download(path, name, timeout)
            return lambda: io.BytesIO(data)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"Video file not found: {name} (relative paths start at {os.getcwd()!r}). Check the path."
            )
        return lambda: path
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return lambda: io.BytesIO(data)
    seekable = getattr(source, "seekable", None)
    offset = source.tell() if seekable is not None and seekable() else None

    def rewound():
        if offset is not None:
            source.seek(offset)
        return source

    return rewound


def _download(url: str, name: str, timeout: float) -> bytes:
    """The body of `url`; every failure is a `VideoDownloadError` naming the URL and what to do."""
    advice = "Check the URL and that the server is reachable, or download the video and pass its path."
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as error:
        raise VideoDownloadError(
            f"Cannot download the video {name}: the server answered HTTP {error.code} ({error.reason}). {advice}"
        ) from error
    except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError) as error:
        reason = getattr(error, "reason", error)
        if isinstance(reason, TimeoutError):
            reason = f"no answer for {timeout:g} s (pass a longer timeout if the server is slow)"
        raise VideoDownloadError(f"Cannot download the video {name}: {reason}. {advice}") from error


def _open_container(media, name: str):
    import av

    try:
        return av.open(media, mode="r")
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
    """Demux every packet of `stream` once (no decoding) to learn each frame's timestamps and the keyframes."""
    import av

    pts, dts, keyframe, durations = [], [], [], []
    try:
        for packet in container.demux(stream):
            if packet.size == 0:  # the flush packet at the end of the stream
                continue
            pts.append(packet.pts)
            dts.append(packet.dts)
            keyframe.append(packet.is_keyframe)
            durations.append(packet.duration or 0)
    except av.FFmpegError as error:
        logger.warning("%s is damaged after frame %d (%s); only the frames before can be read.", name, len(pts), error)
    if not pts:
        raise VideoDecodingError(
            f"{name} has a video stream but no frames could be read: the file is empty or corrupt. Check that it "
            "plays, or re-encode it."
        )
    count, time_base = len(pts), stream.time_base
    counted = container.format.name in _UNTIMED_FORMATS or None in pts or len(set(pts)) < count
    if counted:
        order = np.arange(count)  # frames are numbered as they come out of a decode from the start
        known = next((stamps for stamps in (dts, pts) if None not in stamps), None)
        if known is None:  # no timestamps at all: evenly spaced at the stream's rate
            rate = stream.average_rate or stream.guessed_rate or 1
            known = [round(index / (rate * time_base)) for index in range(count)]
        frame_pts = np.sort(np.asarray(known, dtype=np.int64))  # (F,)
        start_points = np.zeros(1, dtype=np.int64)
    else:
        order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")  # presentation position -> decoding rank
        frame_pts = np.asarray(pts, dtype=np.int64)[order]  # (F,)
        start_points = np.union1d([0], np.flatnonzero(np.asarray(keyframe)[order]))
    # Decoding from start point 0 begins with the stream's first packet, even if that is not a keyframe. Counted
    # streams are never entered by seeking.
    anchors = [0] + order[start_points[1:]].tolist()  # decoding rank of each start point's first packet
    seek_timestamps = np.array(
        [(0, 0) if counted else (pts[rank], pts[rank] if dts[rank] is None else dts[rank]) for rank in anchors],
        dtype=np.int64,
    )  # (K, 2) presentation, decoding
    # The last frame lasts its packet's duration, else the median frame interval.
    last_duration = np.asarray(durations)[order][-1] or (np.median(np.diff(frame_pts)) if count > 1 else 0)
    duration = float((frame_pts[-1] - frame_pts[0] + last_duration) * time_base)
    if duration <= 0:
        rate = stream.average_rate or stream.guessed_rate or 1
        duration = count / float(rate)
    declared = float(stream.duration * time_base) if stream.duration else (container.duration or 0) / 1e6
    if declared > duration + max(0.05 * declared, 2 * duration / count):  # beyond rounding and a stray frame
        logger.warning(
            "%s declares %.1fs of video but has frames for only %.1fs: it seems truncated; frames are sampled from "
            "what it has.", name, declared, duration
        )
    return VideoIndex(
        frame_pts=frame_pts,
        start_points=start_points,
        time_base=Fraction(time_base),
        duration=duration,
        width=stream.codec_context.width,
        height=stream.codec_context.height,
        decode_order=order,
        seek_timestamps=seek_timestamps,
        counted=counted,
    )
