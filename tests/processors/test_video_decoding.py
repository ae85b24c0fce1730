import contextlib
import io
import itertools
import re

import av
import numpy as np
import pytest
from processor_testing import frame_index

from storm_hf.processors.video_decoding import SEEK_COST_FRAMES, VideoDecodingError, VideoReader, plan_seeks

SPARSE = [0, 1, 29, 30, 31, 117, 118, 200, 299]


def read_back(reader, indices):
    return [frame_index(frame) for frame in reader.read(indices)]


@pytest.mark.parametrize(
    "suffix, options",
    [
        (".mp4", {"gop_size": 30}),  # short GOP, B-frames (libx264's default): decode order != presentation order
        (".mp4", {"gop_size": 250}),  # long GOP
        (".mp4", {"gop_size": 25, "options": {"bf": "0"}}),  # no B-frames
        (".mkv", {"gop_size": 30}),  # no frame count in the header
        (".ts", {"gop_size": 30}),  # no frame count; seeks by decoding timestamp, to any packet
        (".webm", {"gop_size": 30, "codec": "libvpx-vp9"}),
    ],
)
def test_reads_exactly_the_frames_asked_for(make_video, suffix, options):
    with VideoReader(make_video(300, suffix, **options)) as reader:
        assert reader.index.num_frames == 300
        assert read_back(reader, SPARSE) == SPARSE
        assert read_back(reader, [299, 5, 5, 120]) == [299, 5, 5, 120]  # any order, repeats
        assert read_back(reader, range(40, 70)) == list(range(40, 70))  # dense


def test_frame_count_comes_from_the_stream_not_the_header(make_video):
    path = make_video(300, ".mkv", gop_size=30)
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0  # Matroska stores no frame count
    with VideoReader(path) as reader:
        assert reader.index.num_frames == 300
        assert read_back(reader, [299]) == [299]


def test_variable_frame_rate_index_and_frames(make_video, vfr_timestamps):
    with VideoReader(make_video(60, timestamps=vfr_timestamps, gop_size=12)) as reader:
        np.testing.assert_allclose(reader.index.frame_times, vfr_timestamps, atol=1e-4)
        # The last frame lasts what its packet says (the muxer's guess): after the last timestamp, at most 0.2 s.
        assert vfr_timestamps[-1] < reader.index.duration <= vfr_timestamps[-1] + 0.2 + 1e-6
        assert reader.index.fps == pytest.approx(60 / reader.index.duration)
        indices = [0, 4, 5, 9, 33, 59]
        assert read_back(reader, indices) == indices


def test_constant_frame_rate_index(make_video):
    with VideoReader(make_video(90, fps=30)) as reader:
        assert (reader.index.num_frames, reader.index.fps, reader.index.duration) == (90, 30.0, 3.0)
        assert (reader.index.width, reader.index.height) == (32, 32)
        np.testing.assert_array_equal(reader.index.start_points, [0, 30, 60])


@pytest.mark.parametrize("kind", ["bytes", "file object", "pathlib"])
def test_sources_other_than_a_path_string(make_video, kind):
    path = make_video(60)
    source = {"bytes": path.read_bytes(), "file object": io.BytesIO(path.read_bytes()), "pathlib": path}[kind]
    with VideoReader(source) as reader:
        assert read_back(reader, [3, 50]) == [3, 50]


def test_seek_plan_follows_the_gop():
    short_gop = np.arange(0, 3600, 30)
    sparse = np.arange(32) * 112 + 56
    # Sparse frames in a short-GOP video: seek to the keyframe before every one of them.
    assert plan_seeks(sparse, short_gop) == (sparse // 30 * 30).tolist()
    # Frames close enough that no seek can skip more than it costs: seek once, then decode straight through.
    dense = np.arange(100, 3600, SEEK_COST_FRAMES + 1)
    assert plan_seeks(dense, np.arange(0, 3600, 250)) == [0] + [None] * (len(dense) - 1)
    # A keyframe just after the last wanted frame saves nothing: keep decoding.
    assert plan_seeks(np.array([28, 31]), np.array([0, 30])) == [0, None]
    assert plan_seeks(np.array([10, 35]), np.array([0, 30])) == [0, 30]


@pytest.mark.parametrize(
    "kind, error, message",
    [
        ("missing", FileNotFoundError, "Video file not found"),
        ("text", VideoDecodingError, "not a video file, or it is corrupt or truncated"),
        ("image", VideoDecodingError, "is a still image (png_pipe), not a video. Pass it as an image"),
        ("audio", VideoDecodingError, "has no video stream (it contains audio)"),
        ("truncated", VideoDecodingError, "not a video file, or it is corrupt or truncated"),
    ],
)
def test_unreadable_files_are_named_in_the_error(bad_files, kind, error, message):
    with pytest.raises(error, match=re.escape(message)) as raised:
        VideoReader(bad_files[kind])
    assert str(bad_files[kind]) in str(raised.value)


def test_undecodable_video_data(bad_files):
    with VideoReader(bad_files["undecodable"]) as reader:
        assert reader.index.num_frames == 30
        with pytest.raises(VideoDecodingError, match="No frame of .*undecodable.mkv.* could be decoded"):
            reader.read([0, 15])


def test_a_damaged_end_is_refused_where_it_starts(bad_files):
    with VideoReader(bad_files["damaged_end"]) as reader:
        assert reader.index.num_frames == 90
        assert read_back(reader, [0, 31, 59]) == [0, 31, 59]
        with pytest.raises(VideoDecodingError, match=r"Frame 75 \(at 2.50s\) of .*damaged_end.mkv.* could not be"):
            reader.read([10, 75])


def test_a_lost_end_is_logged_and_the_rest_read_as_a_plain_decode_reads_it(bad_files, caplog):
    plain = []  # a plain decode, up to where it fails or flags a frame as damaged (error-concealed)
    with av.open(str(bad_files["corrupt_tail"])) as container, contextlib.suppress(av.FFmpegError):
        for frame in itertools.takewhile(lambda frame: not frame.is_corrupt, container.decode(video=0)):
            plain.append(frame.to_ndarray(format="rgb24"))
    with VideoReader(bad_files["corrupt_tail"]) as reader:
        assert "declares 3.0s of video but has frames for only" in caplog.text
        assert 30 < reader.index.num_frames < 90
        np.testing.assert_array_equal(reader.read(range(len(plain))), plain)


def test_out_of_range_frame(make_video):
    with VideoReader(make_video(60)) as reader, pytest.raises(IndexError, match="has frames 0..59"):
        reader.read([10, 60])
