import numpy as np
import pytest

from storm_hf.data.video_writer import write_video


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_the_same_frames_write_the_same_bytes(tmp_path, suffix):
    # without bitexact, Matroska writes random header fields: a test that damages chosen bytes of a file needs this
    frames = np.random.default_rng(0).integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    first = write_video(tmp_path / f"a{suffix}", frames, fps=8, options={"x264-params": "mbtree=0"})
    second = write_video(tmp_path / f"b{suffix}", frames, fps=8, options={"x264-params": "mbtree=0"})
    assert first.read_bytes() == second.read_bytes()
