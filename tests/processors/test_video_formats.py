"""Video files as users have them: B-frames and B-pyramids, open GOPs, hidden frames, MPEG-TS, MP4 (also fragmented),
MOV, Matroska, WebM, AV1, AVI, variable frame rates. Every frame, read sparse or dense, through VideoReader and
through the processor, is exactly the frame a plain PyAV decode of the whole file gives.

VP9 is written in one pass (PyAV cannot hand libvpx the statistics of a first pass), and libvpx makes alternate
reference frames only in two-pass encodes; AV1 (SVT-AV1's default hierarchical structure) covers hidden frames."""

import av
import numpy as np
import pytest
import torch
from processor_testing import TINY_VIDEO_PROCESSOR, assert_shows, frame_index, pixel_indices, to_pixels

from storm_hf.processors.video_decoding import VideoReader
from storm_hf.processors.video_processing_storm import StormVideoProcessor

NUM_FRAMES, GOP = 48, 12
HEIGHT, WIDTH = 48, 64
X264 = {"bf": "3", "b-pyramid": "normal"}  # libx264's defaults, stated: 3 B-frames, the middle one a reference
X265 = {"x265-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0:bframes=4:b-pyramid=1:open-gop=1:log-level=error"}
FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
# Frame times (s) of the variable-frame-rate files: runs of 4 frames 1/30 s apart, then 4 frames 1/6 s apart.
VFR_TIMES = np.concatenate([[0.0], np.cumsum(np.where(np.arange(NUM_FRAMES - 1) % 8 < 4, 1 / 30, 1 / 6))])

FORMATS = {
    "h264 B-pyramid, MPEG-TS": (".ts", {"options": X264}),
    "hevc B-pyramid open GOP, MPEG-TS": (".ts", {"codec": "libx265", "options": X265}),
    "h264 B-pyramid, MP4": (".mp4", {"options": X264}),
    "h264 B-pyramid, fragmented MP4": (".mp4", {"options": X264, "container_options": FRAGMENTED}),
    "h264 B-pyramid, MOV": (".mov", {"options": X264}),
    "hevc B-pyramid open GOP, MOV": (".mov", {"codec": "libx265", "options": X265}),
    "h264 B-pyramid, Matroska": (".mkv", {"options": X264}),
    # No IDR frames after the first: recovery points, flagged as keyframes, from which the picture is whole only after
    # an intra-refresh wave (the decoder shows nothing before); low-latency streams and cameras write these.
    "h264 periodic intra refresh, MP4": (".mp4", {"options": {**X264, "x264-params": "intra-refresh=1"}}),
    "vp9, WebM": (".webm", {"codec": "libvpx-vp9"}),
    "av1 hidden frames, Matroska": (".mkv", {"codec": "libsvtav1"}),
    "mpeg4 B-frames, AVI": (".avi", {"codec": "mpeg4", "options": {"bf": "2"}}),
    "h264 B-pyramid, AVI": (".avi", {"options": X264}),
    "h264 B-pyramid variable frame rate, MP4": (".mp4", {"options": X264, "timestamps": tuple(VFR_TIMES)}),
    "h264 B-pyramid variable frame rate, MPEG-TS": (".ts", {"options": X264, "timestamps": tuple(VFR_TIMES)}),
    "h264 B-pyramid variable frame rate, Matroska": (".mkv", {"options": X264, "timestamps": tuple(VFR_TIMES)}),
    "h264 10-bit (High 10), MP4": (".mp4", {"options": X264, "pix_fmt": "yuv420p10le"}),
    "hevc 10-bit (Main 10), Matroska": (".mkv", {"codec": "libx265", "options": X265, "pix_fmt": "yuv420p10le"}),
    "h264 4:2:2 (High 4:2:2), MP4": (".mp4", {"options": X264, "pix_fmt": "yuv422p"}),
    "ProRes 4:2:2 10-bit, MOV": (".mov", {"codec": "prores_ks", "pix_fmt": "yuv422p10le"}),
    "h264 4:4:4 (High 4:4:4), MP4": (".mp4", {"options": X264, "pix_fmt": "yuv444p"}),
    "h264 B-pyramid with AAC audio, MP4": (".mp4", {"options": X264, "audio": True}),
    "h264 B-pyramid with AAC audio, MPEG-TS": (".ts", {"options": X264, "audio": True}),
    "h264 B-pyramid with AAC audio, Matroska": (".mkv", {"options": X264, "audio": True}),
}
SPARSE = [0, 5, 11, 12, 13, 30, 47]


def plain_decode(path) -> np.ndarray:
    """Every frame of a plain decode of the whole file, as stored, RGB (F, H, W, 3)."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


@pytest.fixture(scope="module", params=list(FORMATS))
def video(request, make_video):
    """(path, the plain decode, the write_video arguments)."""
    suffix, kwargs = FORMATS[request.param]
    path = make_video(NUM_FRAMES, suffix, HEIGHT, WIDTH, gop_size=GOP, **kwargs)
    return path, plain_decode(path), kwargs


def test_the_files_are_what_they_claim(video):
    path, plain, kwargs = video
    assert [frame_index(frame) for frame in plain] == list(range(NUM_FRAMES))  # a plain decode gives what was drawn
    assert_shows(plain, range(NUM_FRAMES))
    with av.open(str(path)) as container:
        packets = [packet for packet in container.demux(video=0) if packet.size]
        keyframes = sum(packet.is_keyframe for packet in packets)
        reordered = any(packet.pts != packet.dts for packet in packets if packet.dts is not None)
        codec = container.streams.video[0].codec_context.name
        assert container.streams.video[0].codec_context.pix_fmt == kwargs.get("pix_fmt", "yuv420p")
        assert len(container.streams.audio) == kwargs.get("audio", False)
    assert keyframes >= NUM_FRAMES // GOP - 1
    if codec in ("h264", "hevc", "mpeg4"):  # frames are decoded out of presentation order
        assert reordered
    if codec == "av1":  # frames decoded ahead of the one a packet shows, and shown later from the decoder's store
        assert max(av1_frames(bytes(packet)) for packet in packets) > 1


def av1_frames(packet: bytes) -> int:
    """How many frames (frame and frame-header OBUs) an AV1 packet (a temporal unit) holds."""
    count, offset = 0, 0
    while offset < len(packet):
        header = packet[offset]
        offset += 1 + (header >> 2 & 1)  # the header, and its extension byte
        size, shift = 0, 0
        while True:  # leb128 payload size
            byte = packet[offset]
            offset, size, shift = offset + 1, size | (byte & 127) << shift, shift + 7
            if byte < 128:
                break
        count += (header >> 3 & 15) in (3, 6)  # OBU_FRAME_HEADER, OBU_FRAME
        offset += size
    return count


def test_every_frame_sparse_and_dense_equals_the_plain_decode(video):
    path, plain, _ = video
    rng = np.random.default_rng(0)
    requests = [
        list(range(NUM_FRAMES)),  # dense
        SPARSE,  # keyframes, their neighbours, the last frame
        list(range(NUM_FRAMES - 1, -1, -7)),  # any order
        rng.integers(0, NUM_FRAMES, 20).tolist(),  # random, with repeats
    ]
    with VideoReader(path) as reader:
        assert reader.index.num_frames == NUM_FRAMES
        for indices in requests:
            np.testing.assert_array_equal(reader.read(indices), plain[indices], err_msg=f"frames {indices}")
        for index in range(NUM_FRAMES):  # each frame alone: a seek to its own start point every time
            np.testing.assert_array_equal(reader.read([index])[0], plain[index], err_msg=f"frame {index}")


@pytest.mark.parametrize("sampling", [{"num_frames": 8}, {"fps": 2}, {"do_sample_frames": False}])
def test_the_processor_delivers_the_plain_decode_s_frames(video, sampling):
    path, plain, _ = video
    processor = StormVideoProcessor(**TINY_VIDEO_PROCESSOR)
    out = processor(str(path), return_metadata=True, **sampling)
    indices = out["video_metadata"][0].frames_indices
    expected = processor(plain[indices], do_sample_frames=False)["pixel_values_videos"]
    assert torch.equal(out["pixel_values_videos"], expected)
    assert pixel_indices(out["pixel_values_videos"][0]) == indices
    assert_shows(to_pixels(out["pixel_values_videos"][0]), indices)


# A player turns the stored picture by the container's display matrix (counter-clockwise degrees).
@pytest.mark.parametrize("suffix", [".mp4", ".mov"])
@pytest.mark.parametrize("rotation", [90, 180, -90])
def test_frames_come_out_as_a_player_shows_them(make_video, suffix, rotation):
    path = make_video(NUM_FRAMES, suffix, HEIGHT, WIDTH, gop_size=GOP, rotation=rotation)
    shown = np.rot90(plain_decode(path), k=rotation // 90, axes=(1, 2))  # (F, H, W, 3) or (F, W, H, 3)
    with VideoReader(path) as reader:
        np.testing.assert_array_equal(reader.read(range(NUM_FRAMES)), shown)
        np.testing.assert_array_equal(reader.read(SPARSE), shown[SPARSE])
    processor = StormVideoProcessor(**TINY_VIDEO_PROCESSOR)
    out = processor(str(path), num_frames=8, return_metadata=True)
    expected = processor(shown[out["video_metadata"][0].frames_indices], do_sample_frames=False)
    assert torch.equal(out["pixel_values_videos"], expected["pixel_values_videos"])
    metadata = out["video_metadata"][0]
    assert (metadata.height, metadata.width) == shown.shape[1:3]
