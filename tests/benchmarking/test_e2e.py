"""A tiny-scale `storm-hf benchmark e2e` run, end to end: results file, plot, token accounting, errors."""

import json

import pytest

from storm_hf.benchmarking.scales import SCALES, SETTINGS, build_config
from storm_hf.benchmarking.stages import STAGES
from storm_hf.benchmarking.tokens import count_tokens
from storm_hf.cli import main

NEW_TOKENS = 2


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    code = main(
        ["benchmark", "e2e", "--scale", "tiny", "--frames", "4", "8", "--repeats", "2", "--new-tokens", str(NEW_TOKENS),
         "--memory-frames", "8", "16", "--video-seconds", "1", "--in-process", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    return out


def test_results_file_has_every_setting_at_every_frame_count(tiny_run):
    results = json.loads((tiny_run / "e2e-tiny-cpu.json").read_text())
    assert results["scale"] == "tiny" and results["device"] == "cpu"
    assert sorted((r["frames"], r["setting"]) for r in results["runs"]) == sorted(
        (frames, name) for frames in (4, 8) for name in SETTINGS
    )
    for run in results["runs"]:
        seconds, each = run["seconds"], run["seconds_each"]
        # every stage was seen in every run, took time, and together they tile the generate call (a stage missed or
        # counted twice moves the sum by that stage's time, 0.2-5 ms here)
        assert all(len(each[key]) == 2 for key in ("generate", *STAGES))
        for index, whole in enumerate(each["generate"]):
            assert all(each[stage][index] > 0 for stage in STAGES)
            assert sum(each[stage][index] for stage in STAGES) == pytest.approx(whole, rel=1e-9, abs=0)
        # the first token comes after decoding the clip, and before the last new token
        assert 0 < seconds["decode"] < seconds["ttft"] < seconds["total"]
        setting = SETTINGS[run["setting"]]
        expected = count_tokens(build_config(SCALES["tiny"], setting), setting, run["frames"])
        assert run["tokens"] == expected.as_dict()
        # the cache holds the prompt and every generated token but the last
        assert run["kv_cache"]["tokens"] == run["prompt_tokens"] + NEW_TOKENS - 1
        assert run["kv_cache"]["bytes"] > 0 and run["memory"]["peak_bytes"] >= run["memory"]["after_build_bytes"]
    assert results["speedups"]["8"]["storm"]["vs_storm"] == pytest.approx(1.0)
    assert [probe["frames"] for probe in results["memory"]["probes"]] == [8, 16]
    per_frame = results["memory"]["per_frame_bytes"]
    # tiny scale: 4x4 patches of 32 fp32 channels per frame; 2x2 tokens of 64 channels enter the temporal encoder
    assert per_frame["vision_features"] == 4 * 4 * 32 * 4 and per_frame["temporal_input"] == 2 * 2 * 64 * 4
    assert set(results["memory"]["kv_cache_per_frame_bytes"]) == set(SETTINGS)


def test_plot_is_a_png(tiny_run):
    data = (tiny_run / "e2e-tiny-cpu.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_a_measurement_in_a_fresh_process_matches_the_accounting():
    from storm_hf.benchmarking.e2e import run_e2e

    results = run_e2e(
        "tiny", [8], ["k4-s2"], repeats=1, new_tokens=NEW_TOKENS, memory_frames=[], video_seconds=1, log=lambda _: None
    )
    (run,) = results["runs"]
    assert results["options"]["isolated_processes"]
    assert run["tokens"]["video_tokens"] == 4 and run["tokens"]["llm_visual_tokens"] == 5  # 1 slot of 2x2 tokens + "\n"
    assert run["memory"]["peak_above_model_bytes"] >= 0


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--frames", "10"], "--frames 10 is not a positive multiple of the temporal pooling window"),
        (["--scale", "huge"], "Unknown scale 'huge'"),
        (["--settings", "k8"], "Unknown settings ['k8']"),
        (["--frames", "64", "--video-seconds", "1"], "The video has only 30 frames, fewer than --frames 64"),
    ],
)
def test_bad_options_are_refused_with_the_reason(arguments, message, capsys, tmp_path):
    base = ["benchmark", "e2e", "--scale", "tiny", "--frames", "8", "--memory-frames", "--in-process"]
    assert main([*base, "--out", str(tmp_path), *arguments]) == 2
    assert message in capsys.readouterr().err
