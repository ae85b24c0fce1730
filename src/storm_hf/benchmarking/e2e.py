"""End to end, side by side: every setting on the same decoded frames, at every frame count, in one run.

Per frame count the video is decoded once (timed); every setting then runs on that clip in a session of its own
(`runner.GenerateSession`, in a fresh process by default), the sessions' runs taken in turn. The memory that grows
with frames is probed separately on longer clips (`runner.FeatureSession`). The paper's own figures travel with
the results for comparison.
"""

import functools
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from .report import results_header
from .runner import measure_side_by_side
from .scales import SCALES, SETTINGS, build_config, shape_summary
from .tokens import video_processor_for
from .video import decode, write_test_video

# The paper's 7B model at 128 frames on one A100, end to end; its Mamba encoder is at most ~3% of the time.
PAPER = {
    "frames": 128,
    "device": "1x A100, 7B model (SigLIP-So400m/14 448 px + Qwen2-7B LLM)",
    "total_seconds": {"baseline": 4.31, "storm": 4.47, "k4": 1.82, "k4-s2": 1.51},
    "temporal_share_at_most": 0.03,
}
WARMUP_FRAMES = 8  # the warm-up clip: every code path of a run, at a small cost
MEMORY_SETTING = "k4"  # the feature-memory probe runs the trained STORM configuration


def _time_decoding(processor, video: Path, num_frames: int, repeats: int) -> tuple[torch.Tensor, float]:
    """The clip (1, T, 3, S, S) and the median seconds of decoding + preprocessing it, after one warm-up."""
    sampled = processor(str(video), num_frames=num_frames, return_tensors="pt", return_metadata=True)
    total = sampled["video_metadata"][0].total_num_frames
    if total < num_frames:  # the processor would repeat frames to deliver num_frames: not a clip worth timing
        raise ValueError(
            f"The video has only {total} frames, fewer than --frames {num_frames}: pass a longer --video "
            "or a larger --video-seconds."
        )
    pixels = sampled["pixel_values_videos"]
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        decode(processor, video, num_frames)
        seconds.append(time.perf_counter() - start)
    return pixels, statistics.median(seconds)


def _check_frames(option: str, frames: list[int], settings: list[str]) -> None:
    for count in frames:
        bad = [name for name in settings if count % SETTINGS[name].temporal_pool_size]
        if count < 1 or bad:
            raise ValueError(
                f"{option} {count} is not a positive multiple of the temporal pooling window of {bad or settings}: "
                "pass multiples of 4, e.g. 32 64 128."
            )


def _end_to_end(run_result: dict, decode_seconds: float) -> dict:
    """Adds the decode stage, time to first token, the total and the temporal encoder's share of it."""
    seconds = {"decode": decode_seconds, **run_result["seconds"]}
    seconds["ttft"] = decode_seconds + seconds["vision"] + seconds["temporal"] + seconds["prefill"]
    seconds["total"] = decode_seconds + seconds["generate"]
    return {**run_result, "seconds": seconds, "temporal_share": seconds["temporal"] / seconds["total"]}


def _speedups(runs: list[dict]) -> dict:
    """{frames: {setting: {"vs_storm": ..., "vs_baseline": ...}}}: total-time ratios against the unreduced runs."""
    totals = {(r["frames"], r["setting"]): r["seconds"]["total"] for r in runs}
    out = {}
    for (frames, name), total in totals.items():
        references = [ref for ref in ("storm", "baseline") if (frames, ref) in totals]
        out.setdefault(str(frames), {})[name] = {f"vs_{ref}": totals[(frames, ref)] / total for ref in references}
    return out


def _memory_summary(features: list[dict], runs: list[dict]) -> dict:
    """Bytes per frame of what grows with the clip, from the feature probes and the largest-clip runs."""
    summary = {"probes": features, "per_frame_bytes": {}}
    if features:
        first, last = features[0], features[-1]
        per_frame = summary["per_frame_bytes"]
        per_frame["vision_features"] = first["vision_features_bytes"] / first["frames"]
        per_frame["temporal_input"] = first["temporal_input_bytes"] / first["frames"]
        if last["frames"] > first["frames"]:
            span = last["frames"] - first["frames"]
            per_frame["temporal_working_growth"] = (
                last["temporal_peak_above_start_bytes"] - first["temporal_peak_above_start_bytes"]
            ) / span
            summary["vision_transient_ratio"] = last["vision_transient_bytes"] / max(first["vision_transient_bytes"], 1)
    largest = max((r["frames"] for r in runs), default=None)
    summary["kv_cache_per_frame_bytes"] = {
        r["setting"]: r["kv_cache"]["bytes"] / r["kv_cache"]["tokens"] * r["tokens"]["llm_visual_tokens"] / r["frames"]
        for r in runs
        if r["frames"] == largest
    }
    return summary


def _measure_runs(
    measure, base: dict, processor, video: Path, frames: list[int], settings: list[str], folder: Path, log
) -> list[dict]:
    """Every setting at every frame count, on the same decoded clip per frame count; `base` is the shared spec."""
    runs = []
    for count in frames:
        log(f"{count} frames: decoding, then {', '.join(settings)}")
        pixels, decode_seconds = _time_decoding(processor, video, count, base["repeats"])
        pixels_path = folder / f"frames-{count}.pt"
        torch.save(pixels, pixels_path)
        clip = {"kind": "generate", "pixels": str(pixels_path), "warmup_frames": min(WARMUP_FRAMES, count)}
        specs = {name: {**base, **clip, "setting": SETTINGS[name].as_dict()} for name in settings}
        results = measure(specs, base["repeats"])
        runs += [{"setting": name, "frames": count, **_end_to_end(results[name], decode_seconds)} for name in settings]
    return runs


def _measure_feature_memory(measure, base: dict, memory_frames: list[int], log) -> list[dict]:
    """One feature-memory probe per clip length, one after another."""
    log(f"feature memory at {', '.join(map(str, memory_frames))} frames")
    specs = {
        str(count): {
            **base,
            "kind": "features",
            "setting": SETTINGS[MEMORY_SETTING].as_dict(),
            "frames": count,
            "warmup_frames": min(WARMUP_FRAMES, count),
        }
        for count in memory_frames
    }
    results = measure(specs, 1, interleave=False)
    return [results[str(count)] for count in memory_frames]


def run_e2e(
    scale: str,
    frames: list[int],
    settings: list[str],
    repeats: int,
    new_tokens: int,
    memory_frames: list[int],
    device: str | None = None,
    dtype: str | None = None,
    vision: dict | None = None,
    text: dict | None = None,
    video: str | None = None,
    video_seconds: float = 30.0,
    threads: int | None = None,
    isolate: bool = True,
    interleave: bool | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Measure every setting at every frame count; returns the results (see docs/performance-e2e.md).

    `isolate`: a fresh process per (setting, frame count). `interleave` (default: on the CPU, where several models
    fit in memory): keep every setting's session open and take their runs in turn, rotating the order each round.
    """
    if scale not in SCALES:
        raise ValueError(f"Unknown scale {scale!r}; choose one of {', '.join(SCALES)}.")
    unknown = [name for name in settings if name not in SETTINGS]
    if unknown:
        raise ValueError(f"Unknown settings {unknown}; choose among {', '.join(SETTINGS)}.")
    _check_frames("--frames", frames, settings)
    _check_frames("--memory-frames", memory_frames, [MEMORY_SETTING])
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype or SCALES[scale].dtype
    if threads:
        torch.set_num_threads(threads)
    interleave = torch.device(device).type == "cpu" if interleave is None else interleave
    common = {"scale": scale, "device": device, "dtype": dtype, "vision": vision, "text": text, "threads": threads}
    measure = functools.partial(measure_side_by_side, isolated=isolate, interleave=interleave, log=log)
    reference = build_config(SCALES[scale], SETTINGS["storm"], vision, text)
    load_start, started = os.getloadavg(), time.perf_counter()

    with tempfile.TemporaryDirectory() as folder:
        if video is None:
            log(f"writing a {video_seconds:g} s 640x360 30 fps test video")
            source = write_test_video(Path(folder) / "test.mp4", video_seconds)
        else:
            source = Path(video)
        base = {**common, "repeats": repeats, "new_tokens": new_tokens}
        processor = video_processor_for(reference)
        runs = _measure_runs(measure, base, processor, source, frames, settings, Path(folder), log)
    probes = _measure_feature_memory(measure, common, memory_frames, log)

    return {
        **results_header("e2e", scale, device, dtype, load_start),
        "shapes": shape_summary(reference),
        "options": {
            "frames": frames,
            "settings": settings,
            "repeats": repeats,
            "new_tokens": new_tokens,
            "memory_frames": memory_frames,
            "video": video or f"synthetic {video_seconds:g} s 640x360 30 fps H.264",
            "isolated_processes": isolate,
            "interleaved_runs": interleave,
        },
        "settings": {name: SETTINGS[name].as_dict() for name in settings},
        "runs": runs,
        "speedups": _speedups(runs),
        "memory": _memory_summary(probes, runs),
        "paper": PAPER,
        "wall_seconds": time.perf_counter() - started,
    }
