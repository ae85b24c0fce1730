"""Decoding a video as its data arrives, frame by frame: files (also while they are being written), URLs, live streams.

`iter_frames` yields `(frame, seconds)`, an RGB frame (H, W, 3) uint8 and its time from the first frame, in
presentation order, as soon as each frame is decoded. Nothing is read ahead: unlike `VideoReader`, which demuxes a
whole file first to read frames by index, this reads a source once, front to back.

- A path is read as it is. With `follow=True` a file that is still being written is read on as it grows, until no
  new data has arrived for `idle_timeout` seconds: a recording in a container written front to back (MPEG-TS,
  Matroska / WebM, fragmented MP4). A plain MP4 writes its index at the end and cannot be read before it is done.
- An http(s) URL, or any stream URL FFmpeg reads (rtsp://, rtmp://, srt://, udp://, ...), is opened by FFmpeg,
  which reads it as it comes.
- Bytes or a binary file object are read from their start.

`keep(seconds) -> bool` is asked for every decoded frame before its pixels are converted, so frames it refuses (a
frame-rate sampler's) cost their decoding only. Damaged packets and frames are skipped, as `VideoReader` does.

Hub code: imports only the standard library, numpy (through `video_decoding`) and PyAV (lazily).
"""

import os
import time

from .video_decoding import (
    URL_TIMEOUT,
    VideoDecodingError,
    _media_opener,
    _open_container,
    _video_stream,
    describe_source,
)

_URL_SCHEMES = ("http://", "https://", "rtsp://", "rtsps://", "rtmp://", "rtmps://", "srt://", "udp://", "tcp://")


class _GrowingFile:
    """A binary file read while another process appends to it: a read at the end waits for more data, and returns
    end-of-file once nothing new has arrived for `idle_timeout` seconds. Not seekable, so demuxers read it in order."""

    def __init__(self, path: str, poll_interval: float, idle_timeout: float):
        self._file = open(path, "rb")
        self._poll_interval, self._idle_timeout = poll_interval, idle_timeout

    def read(self, size: int = -1) -> bytes:
        waited = 0.0
        while True:
            data = self._file.read(size)
            if data or waited >= self._idle_timeout:
                return data
            time.sleep(self._poll_interval)
            waited += self._poll_interval

    def close(self) -> None:
        self._file.close()


def _open(source, name: str, follow: bool, poll_interval: float, idle_timeout: float):
    """(container, file object to close with it or None)."""
    import av

    if isinstance(source, (str, os.PathLike)) and os.fspath(source).startswith(_URL_SCHEMES):
        try:
            return av.open(os.fspath(source), mode="r"), None
        except av.FFmpegError as error:
            raise VideoDecodingError(
                f"Cannot open {name} ({error}). Check that the URL is reachable and serves a video stream."
            ) from error
    if not follow:  # a path, bytes or a file object, opened as the offline reader opens them
        return _open_container(_media_opener(source, name, URL_TIMEOUT)(), name), None
    if not isinstance(source, (str, os.PathLike)):
        raise ValueError(f"follow=True reads a file as it grows: pass its path, not {name}.")
    if not os.path.isfile(source):
        raise FileNotFoundError(f"Video file not found: {name} (relative paths start at {os.getcwd()!r}).")
    growing = _GrowingFile(os.fspath(source), poll_interval, idle_timeout)
    try:
        return av.open(growing, mode="r"), growing
    except av.FFmpegError as error:
        growing.close()
        raise VideoDecodingError(
            f"Cannot open {name} as a video stream ({error}). A file read while it is written must be in a container "
            "written front to back (MPEG-TS, Matroska/WebM, fragmented MP4), and its header must arrive within "
            "idle_timeout seconds."
        ) from error


def iter_frames(source, *, keep=None, follow: bool = False, poll_interval: float = 0.05, idle_timeout: float = 5.0):
    """Yield `(frame, seconds)` for each frame of `source` as it is decoded (see the module docstring)."""
    import av

    name = describe_source(source)
    container, extra = _open(source, name, follow, poll_interval, idle_timeout)
    try:
        stream = _video_stream(container, name)
        rate = float(stream.average_rate or stream.guessed_rate or 1)
        start, decoded = None, 0
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    continue
                for frame in frames:
                    if frame.is_corrupt:
                        continue
                    at = frame.time if frame.time is not None else decoded / rate
                    start = at if start is None else start
                    decoded += 1
                    if keep is None or keep(at - start):
                        yield frame.to_ndarray(format="rgb24"), at - start
        except av.FFmpegError as error:
            if not decoded:
                raise VideoDecodingError(f"No frame of {name} could be decoded ({error}).") from error
            return  # a damaged or cut tail: the frames before it were delivered
        if not decoded:
            raise VideoDecodingError(
                f"No frame of {name} could be decoded: the video data is empty or corrupt. Check that it plays."
            )
    finally:
        container.close()
        if extra is not None:
            extra.close()


__all__ = ["iter_frames"]
