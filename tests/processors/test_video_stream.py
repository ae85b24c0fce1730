"""Decoding a video front to back as it arrives: files, files still being written, URLs, bytes and file objects."""

import functools
import http.server
import threading
import time

import numpy as np
import pytest
from processor_testing import frame_index, index_frames

from storm_hf.data.video_writer import write_video
from storm_hf.processors.video_decoding import VideoDecodingError, VideoReader
from storm_hf.processors.video_stream import iter_frames


def indices_and_times(frames):
    """[(index drawn in the frame, seconds to the millisecond)] (Matroska keeps milliseconds)."""
    return [(frame_index(frame), round(seconds, 3)) for frame, seconds in frames]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".ts"])
def test_every_frame_in_order_with_its_time(make_video, suffix):
    path = make_video(45, suffix, fps=15)
    decoded = list(iter_frames(path))
    assert indices_and_times(decoded) == [(i, round(i / 15, 3)) for i in range(45)]
    with VideoReader(path) as reader:  # the same pixels as the indexed reader
        np.testing.assert_array_equal(np.stack([frame for frame, _ in decoded]), reader.read(np.arange(45)))


def test_keep_chooses_the_frames_converted(make_video):
    asked = []

    def keep(seconds):
        asked.append(seconds)
        return seconds >= 1.0

    decoded = indices_and_times(iter_frames(make_video(45, ".mp4", fps=15), keep=keep))
    assert decoded == [(i, round(i / 15, 3)) for i in range(15, 45)]
    assert len(asked) == 45  # every frame was offered, in order


def test_bytes_and_file_objects(make_video):
    path = make_video(20, ".mkv", fps=10)
    expected = indices_and_times(iter_frames(path))
    assert indices_and_times(iter_frames(path.read_bytes())) == expected
    with open(path, "rb") as file:
        assert indices_and_times(iter_frames(file)) == expected


def test_a_file_still_being_written_is_read_as_it_grows(tmp_path):
    data = write_video(tmp_path / "full.ts", index_frames(90), fps=30).read_bytes()
    growing = tmp_path / "live.ts"
    growing.write_bytes(b"")
    finished = threading.Event()

    def record():
        with open(growing, "ab") as file:
            for start in range(0, len(data), 2048):
                file.write(data[start : start + 2048])
                file.flush()
                time.sleep(0.03)
        finished.set()

    writer = threading.Thread(target=record)
    writer.start()
    seen = []
    try:
        for frame, seconds in iter_frames(growing, follow=True, poll_interval=0.01, idle_timeout=1.0):
            seen.append((frame_index(frame), finished.is_set()))
    finally:
        writer.join()
    assert [index for index, _ in seen] == list(range(90))
    assert not seen[0][1]  # the first frames arrived while the file was still being written


def test_a_url_is_read_by_ffmpeg_as_it_comes(make_video):
    path = make_video(30, ".ts", fps=10)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=path.parent))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{path.name}"
        assert indices_and_times(iter_frames(url)) == indices_and_times(iter_frames(path))
    finally:
        server.shutdown()
        server.server_close()


def test_bad_sources_get_clear_errors(bad_files, make_video):
    with pytest.raises(FileNotFoundError, match="Video file not found"):
        next(iter_frames(bad_files["missing"]))
    with pytest.raises(FileNotFoundError, match="Video file not found"):
        next(iter_frames(bad_files["missing"], follow=True))
    with pytest.raises(VideoDecodingError, match="Cannot open"):
        next(iter_frames(bad_files["text"]))
    with pytest.raises(VideoDecodingError, match="no video stream"):
        next(iter_frames(bad_files["audio"]))
    with pytest.raises(VideoDecodingError, match="No frame .* could be decoded"):
        next(iter_frames(bad_files["undecodable"]))
    with pytest.raises(ValueError, match="follow=True reads a file as it grows: pass its path"):
        next(iter_frames(make_video(8, ".ts").read_bytes(), follow=True))


def test_a_damaged_tail_ends_the_stream_after_the_frames_before_it(bad_files):
    indices = [frame_index(frame) for frame, _ in iter_frames(bad_files["corrupt_tail"])]
    assert indices == list(range(len(indices))) and 0 < len(indices) < 90
