"""A tiny-scale `storm-hf benchmark stream` run: the results file, the plot, the budget holding, the errors."""

import json

import pytest

from storm_hf.benchmarking.stream import run_stream
from storm_hf.cli import main


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    argv = ["benchmark", "stream", "--scale", "tiny", "--frames", "24", "8", "--max-video-tokens", "8",
            "--new-tokens", "2", "--out", str(out)]
    assert main(argv) == 0
    assert (out / "stream-tiny-cpu.png").stat().st_size > 0
    return json.loads((out / "stream-tiny-cpu.json").read_text())


def test_every_frame_is_timed_and_every_length_compared(results):
    assert results["benchmark"] == "stream" and results["scale"] == "tiny" and results["device"] == "cpu"
    assert len(results["ms_per_frame"]) == 24 and min(results["ms_per_frame"]) > 0
    assert [point["frames"] for point in results["checkpoints"]] == [8, 24]
    for point in results["checkpoints"]:
        stream, offline = point["stream"], point["offline"]
        assert stream["answer_seconds"] > 0 and offline["seconds"]["total"] > 0
        assert offline["seconds"]["total"] == pytest.approx(
            sum(offline["seconds"][key] for key in ("preprocess", "vision_and_temporal", "generate"))
        )
        assert point["offline_vs_stream_answer"] == pytest.approx(offline["seconds"]["total"] / stream["answer_seconds"])
        # the offline prompt holds the slots the stream's cache holds
        assert offline["video_tokens"] == stream["video_tokens"]


def test_the_budget_holds_the_cache_and_the_temporal_state_is_constant(results):
    early, late = (point["stream"] for point in results["checkpoints"])
    assert results["tokens_per_slot"] == 4
    assert early["video_tokens"] == late["video_tokens"] == 8  # 2 slots of 4 tokens, reached at 8 frames
    assert early["kv_cache_bytes"] == late["kv_cache_bytes"] > 0
    assert early["cache_tokens"] == late["cache_tokens"]
    assert early["temporal_state_bytes"] == late["temporal_state_bytes"] > 0


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="Unknown scale 'huge'"):
        run_stream("huge", [8])
    with pytest.raises(ValueError, match="at least 8 frames"):
        run_stream("tiny", [4])
