"""Fixtures: videos made by the tests (see `processor_testing`), files that are not readable videos, the tokenizer
and tiny processors."""

from fractions import Fraction

import av
import numpy as np
import PIL.Image
import pytest
from processor_testing import CORPUS, SIDE, TINY_VIDEO_PROCESSOR, index_frames

from storm_hf.data.video_writer import write_video
from storm_hf.processors.processing_storm import StormProcessor
from storm_hf.processors.video_processing_storm import StormVideoProcessor
from storm_hf.tokenization import build_tokenizer


@pytest.fixture(scope="session")
def make_video(tmp_path_factory):
    """make_video(num_frames, suffix=".mp4", height=32, width=32, **write_video kwargs) -> path of a cached video
    drawn by `index_frames`."""
    folder = tmp_path_factory.mktemp("videos")
    cache = {}

    def make(num_frames: int, suffix: str = ".mp4", height: int = SIDE, width: int = SIDE, **kwargs):
        key = (num_frames, suffix, height, width, repr(sorted(kwargs.items())))
        if key not in cache:
            path = folder / f"video{len(cache)}{suffix}"
            cache[key] = write_video(path, index_frames(num_frames, height, width), **kwargs)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def vfr_timestamps():
    """60 frame times (s): runs of 5 frames 1/30 s apart alternating with runs 1/5 s apart (7 s in all)."""
    gaps = np.where(np.arange(60) % 10 < 5, 1 / 30, 1 / 5)
    return np.concatenate([[0.0], np.cumsum(gaps)[:-1]])


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory, make_video):
    """Files that are not readable videos, by kind."""
    folder = tmp_path_factory.mktemp("bad")
    files = {"missing": folder / "missing.mp4"}

    files["text"] = folder / "notes.mp4"
    files["text"].write_text("This is a text file with a video suffix.\n" * 20)

    files["image"] = folder / "still.png"
    PIL.Image.fromarray(index_frames(1)[0]).save(files["image"])

    files["audio"] = folder / "sound.m4a"
    with av.open(str(files["audio"]), mode="w") as container:
        stream = container.add_stream("aac", rate=16000)
        for step in range(16):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, step * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)

    # An MP4 cut in half loses its index (the moov box is written last): it cannot be opened at all.
    data = make_video(60).read_bytes()
    files["truncated"] = folder / "truncated.mp4"
    files["truncated"].write_bytes(data[: len(data) // 2])

    # A Matroska file whose last third is overwritten with noise: the container's end and index are lost.
    data = bytearray(make_video(90, ".mkv").read_bytes())
    noise_from = len(data) * 2 // 3
    data[noise_from:] = np.random.default_rng(0).integers(0, 256, len(data) - noise_from, dtype=np.uint8).tobytes()
    files["corrupt_tail"] = folder / "corrupt_tail.mkv"
    files["corrupt_tail"].write_bytes(bytes(data))

    # Every packet of a valid stream replaced by noise: the container indexes 30 frames, none decodes.
    files["undecodable"] = _with_noise_packets(make_video(30, ".mkv"), folder / "undecodable.mkv", from_packet=0)
    # Packets from the third keyframe (frame 60 of 90) on replaced by noise: the container is whole, the video is not.
    files["damaged_end"] = _with_noise_packets(make_video(90, ".mkv"), folder / "damaged_end.mkv", from_packet=60)
    return files


def _with_noise_packets(source_path, path, from_packet: int):
    """A copy of a video whose packets from the `from_packet`-th on (in decoding order) hold random bytes."""
    rng = np.random.default_rng(from_packet)
    with av.open(str(source_path)) as source, av.open(str(path), mode="w") as target:
        stream = target.add_stream_from_template(source.streams.video[0])
        packets = (packet for packet in source.demux(source.streams.video[0]) if packet.size)
        for rank, packet in enumerate(packets):
            if rank >= from_packet:
                noise = av.Packet(rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
                noise.pts, noise.dts, noise.is_keyframe = packet.pts, packet.dts, packet.is_keyframe
                noise.time_base, packet = Fraction(packet.time_base), noise
            packet.stream = stream
            target.mux(packet)
    return path


@pytest.fixture(scope="session")
def tokenizer():
    return build_tokenizer(CORPUS, vocab_size=320)


@pytest.fixture
def video_processor():
    return StormVideoProcessor(**TINY_VIDEO_PROCESSOR)


@pytest.fixture
def processor(tokenizer):
    return StormProcessor(StormVideoProcessor(**TINY_VIDEO_PROCESSOR), tokenizer)
