"""Results out: the machine, Markdown tables, the JSON file and the plot."""

import json
import os
import platform
from pathlib import Path

import torch
import transformers

from .scales import SCALES

STAGE_COLUMNS = ("decode", "vision", "temporal", "prefill", "generation")
MIB = 2**20


def machine_info(device: str) -> dict:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        lines = cpuinfo.read_text().splitlines()
        names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
        cpu = names[0] if names else cpu
    info = {
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "os": platform.platform(),
    }
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def results_header(benchmark: str, scale: str, device: str, dtype: str, load_average_at_start) -> dict:
    """What every results file starts with: the benchmark, the model scale, the device and dtype, the machine and
    its load average when the run started and now, as it ends."""
    return {
        "benchmark": benchmark,
        "scale": scale,
        "scale_description": SCALES[scale].description,
        "device": torch.device(device).type,
        "dtype": dtype,
        "machine": {
            **machine_info(device),
            "load_average_at_start": load_average_at_start,
            "load_average_at_end": os.getloadavg(),
        },
    }


def pyplot():
    """matplotlib's pyplot drawing to files (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def runs_table(results: dict) -> str:
    """One row per (frames, setting): tokens, seconds per stage, time to first token, total, memory, KV cache."""
    head = (
        "| frames | setting | video tokens | LLM visual tokens | decode s | vision s | temporal s | prefill s "
        "| generate s | TTFT s | total s | vs no reduction | temporal share | peak above model MiB | KV cache MiB |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    speedups = results["speedups"]
    for run in results["runs"]:
        s = run["seconds"]
        stages = " | ".join(f"{s[key]:.2f}" for key in STAGE_COLUMNS)
        lines.append(
            f"| {run['frames']} | {run['setting']} | {run['tokens']['video_tokens']:,} | "
            f"{run['tokens']['llm_visual_tokens']:,} | {stages} | {s['ttft']:.2f} | {s['total']:.2f} | "
            f"{_ratio(speedups[str(run['frames'])][run['setting']].get('vs_storm'))} | {run['temporal_share']:.1%} | "
            f"{run['memory']['peak_above_model_bytes'] / MIB:,.0f} | {run['kv_cache']['bytes'] / MIB:,.1f} |"
        )
    return "\n".join(lines)


def paper_table(results: dict) -> str:
    """Our totals at the paper's frame count beside the paper's A100 figures, with speed-ups over the baseline."""
    paper, frames = results["paper"], str(results["paper"]["frames"])
    ours = {r["setting"]: r["seconds"]["total"] for r in results["runs"] if str(r["frames"]) == frames}
    lines = [
        f"| setting ({frames} frames) | paper s | paper vs baseline | ours s | ours vs baseline |",
        "|---|---|---|---|---|",
    ]
    for name in results["settings"]:
        theirs = paper["total_seconds"].get(name)
        mine = ours.get(name)
        lines.append(
            f"| {name} | {'' if theirs is None else f'{theirs:.2f}'} | "
            f"{_ratio(paper['total_seconds']['baseline'] / theirs) if theirs else ''} | "
            f"{'' if mine is None else f'{mine:.2f}'} | "
            f"{_ratio(ours['baseline'] / mine) if mine and 'baseline' in ours else ''} |"
        )
    return "\n".join(lines)


def memory_table(results: dict) -> str:
    """The feature-memory probes: what the vision stage and the temporal encoder hold, per clip length."""
    lines = [
        "| frames | vision features MiB | vision transient MiB | temporal input MiB | temporal peak above input MiB |",
        "|---|---|---|---|---|",
    ]
    for probe in results["memory"]["probes"]:
        lines.append(
            f"| {probe['frames']} | {probe['vision_features_bytes'] / MIB:,.1f} | "
            f"{probe['vision_transient_bytes'] / MIB:,.1f} | {probe['temporal_input_bytes'] / MIB:,.1f} | "
            f"{probe['temporal_peak_above_start_bytes'] / MIB:,.1f} |"
        )
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    """Total latency against frames (one line per setting), and stage shares at the largest frame count."""
    plt = pyplot()
    runs, names = results["runs"], list(results["settings"])
    frames = sorted({r["frames"] for r in runs})
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    for name in names:
        points = sorted((r["frames"], r["seconds"]["total"]) for r in runs if r["setting"] == name)
        left.plot(*zip(*points), marker="o", label=name)
    left.set_xscale("log", base=2)
    left.set_xticks(frames, [str(f) for f in frames])
    left.set_xlabel("frames")
    left.set_ylabel("end-to-end seconds")
    left.set_ylim(bottom=0)
    left.set_title("Latency against frames")
    left.grid(alpha=0.3)
    left.legend()

    largest = {r["setting"]: r["seconds"] for r in runs if r["frames"] == frames[-1]}
    stage_sums = {n: sum(largest[n][stage] for stage in STAGE_COLUMNS) for n in names}
    bottom = [0.0] * len(names)
    for stage in STAGE_COLUMNS:
        shares = [largest[n][stage] / stage_sums[n] for n in names]
        right.bar(names, shares, bottom=bottom, label=stage)
        bottom = [b + s for b, s in zip(bottom, shares)]
    right.set_ylabel("share of the end-to-end time (stage medians)")
    right.set_title(f"Stage shares at {frames[-1]} frames")
    right.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    right.tick_params(axis="x", rotation=20)
    figure.suptitle(f"storm-hf e2e, scale {results['scale']} ({results['dtype']}), {machine_title(results)}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def machine_title(results: dict) -> str:
    """The machine a run measured, for a plot's title."""
    info = results["machine"]
    return info.get("gpu") or f"{info['cpu']}, {info['cpu_cores']} cores, {info['torch_threads']} torch thread(s)"


def write_results(results: dict, out_dir: str | Path, plot_results=plot) -> tuple[Path, Path]:
    """benchmarks/results/<benchmark>-<scale>-<device>.json and .png (drawn by `plot_results`)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{results['benchmark']}-{results['scale']}-{results['device']}"
    json_path, png_path = stem.with_suffix(".json"), stem.with_suffix(".png")
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    plot_results(results, png_path)
    return json_path, png_path
