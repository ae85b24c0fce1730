"""The stream benchmark's table (Markdown) and plot (PNG)."""

from pathlib import Path

from .report import MIB, machine_title, pyplot

ROLLING = 32  # frames per point of the per-frame latency curve (fewer for short streams)


def stream_table(results: dict) -> str:
    """One row per stream length: the stream's per-frame cost, memory and answer time, and the offline re-run's."""
    head = (
        "| frames | stream ms/frame mean | p50 | p95 | max | video tokens in cache | KV cache MiB | temporal state KiB "
        "| memory above stream start MiB | stream answer s | offline re-run s (prepare / vision+temporal / LLM) "
        "| offline peak above stream MiB | offline / stream |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for point in results["checkpoints"]:
        stream, offline = point["stream"], point["offline"]
        ms, seconds = stream["ms_per_frame"], offline["seconds"]
        lines.append(
            f"| {point['frames']:,} | {ms['mean']:.1f} | {ms['p50']:.1f} | {ms['p95']:.1f} | {ms['max']:.1f} | "
            f"{stream['video_tokens']:,} | {stream['kv_cache_bytes'] / MIB:,.1f} | "
            f"{stream['temporal_state_bytes'] / 1024:,.1f} | {stream['memory_above_start_bytes'] / MIB:,.0f} | "
            f"{stream['answer_seconds']:.2f} | {seconds['total']:.2f} ({seconds['preprocess']:.2f} / "
            f"{seconds['vision_and_temporal']:.2f} / {seconds['generate']:.2f}) | "
            f"{offline['peak_above_stream_bytes'] / MIB:,.0f} | {point['offline_vs_stream_answer']:.1f}x |"
        )
    return "\n".join(lines)


def plot_stream(results: dict, path: Path) -> None:
    """Per-frame latency along the stream; time to answer, streamed and re-run offline; memory along the stream."""
    plt = pyplot()
    points = results["checkpoints"]
    lengths = [point["frames"] for point in points]
    per_frame = results["ms_per_frame"]
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 4.8))
    rolling = max(1, min(ROLLING, len(per_frame) // 8))
    ends = range(rolling, len(per_frame) + 1, rolling)
    left.plot(list(ends), [sum(per_frame[end - rolling : end]) / rolling for end in ends], marker=".")
    left.set_xlabel("frames streamed")
    left.set_ylabel(f"ms per new frame (mean of {rolling})")
    left.set_ylim(bottom=0)
    left.set_title("Cost of each new frame")
    left.grid(alpha=0.3)

    middle.plot(lengths, [p["offline"]["seconds"]["total"] for p in points], marker="o", label="re-run offline")
    middle.plot(lengths, [p["stream"]["answer_seconds"] for p in points], marker="o", label="streaming session")
    middle.set_xscale("log", base=2)
    middle.set_yscale("log")
    middle.set_xticks(lengths, [str(n) for n in lengths])
    middle.set_xlabel("stream length (frames)")
    middle.set_ylabel("seconds to answer a question")
    middle.set_title("Time to answer")
    middle.grid(alpha=0.3)
    middle.legend()

    right.plot(lengths, [p["stream"]["kv_cache_bytes"] / MIB for p in points], marker="o", label="KV cache")
    right.plot(lengths, [p["stream"]["memory_above_start_bytes"] / MIB for p in points], marker="o",
               label="memory above the stream's start")
    right.plot(lengths, [p["offline"]["peak_above_stream_bytes"] / MIB for p in points], marker="o",
               label="offline re-run's peak (above the stream)")
    right.set_xscale("log", base=2)
    right.set_xticks(lengths, [str(n) for n in lengths])
    right.set_xlabel("stream length (frames)")
    right.set_ylabel("MiB")
    right.set_title("Memory")
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    options = results["options"]
    figure.suptitle(
        f"storm-hf stream, scale {results['scale']} ({results['dtype']}), budget {options['max_video_tokens']} video "
        f"tokens, k={options['temporal_pool_size']} s={options['temporal_sampling_stride']}, {machine_title(results)}"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
