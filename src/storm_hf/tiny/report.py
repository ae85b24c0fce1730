"""The accuracy tables (Markdown) and the plot (PNG) of `storm-hf evaluate-tiny` results.

Results: `{model name: {frames: {stride: {question type or "overall": accuracy %, "video_tokens": n}}}}` (JSON keys
are strings).
"""

from pathlib import Path

from ..data.questions import QUESTION_TYPES

COLUMNS = ("overall", *QUESTION_TYPES)


def markdown_table(results: dict) -> str:
    """One row per (model, frames, stride), one column per question type, accuracies in %."""
    lines = [
        "| model | frames | s | video tokens | " + " | ".join(COLUMNS) + " |",
        "|---" * (4 + len(COLUMNS)) + "|",
    ]
    for name, by_frames in results.items():
        for frames, by_stride in by_frames.items():
            for stride, scores in by_stride.items():
                cells = " | ".join(f"{scores[column]:.1f}" for column in COLUMNS)
                lines.append(f"| {name} | {frames} | {stride} | {scores['video_tokens']} | {cells} |")
    return "\n".join(lines)


def at_budget(by_frames: dict, tokens: int) -> dict[int, dict]:
    """{frames: scores} of the settings that give exactly `tokens` video tokens (one stride per frame count)."""
    found = {}
    for frames, by_stride in by_frames.items():
        for scores in by_stride.values():
            if scores["video_tokens"] == tokens:
                found[int(frames)] = scores
                break
    return dict(sorted(found.items()))


def plot(results: dict, path, budgets=(16, 8)) -> Path:
    """Accuracy against the frame count at fixed video-token budgets, one panel per question type, a line per model
    and budget (the stride grows with the frames so the language model sees the same number of video tokens)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(COLUMNS), figsize=(4 * len(COLUMNS), 3.6), sharey=True)
    markers = dict(zip(budgets, "os^v"))
    for axis, column in zip(axes, COLUMNS):
        for name, by_frames in results.items():
            for tokens in budgets:
                points = at_budget(by_frames, tokens)
                if not points:
                    continue
                axis.plot(
                    list(points),
                    [scores[column] for scores in points.values()],
                    marker=markers[tokens],
                    linestyle="-" if tokens == budgets[0] else ":",
                    label=f"{name}, {tokens} video tokens",
                )
        axis.set_xscale("log", base=2)
        frames = sorted({int(f) for by_frames in results.values() for f in by_frames})
        axis.set_xticks(frames, [str(f) for f in frames])
        axis.minorticks_off()
        axis.set_title(column.replace("_", " "))
        axis.set_xlabel("frames (stride grows with them)")
        axis.set_ylim(0, 102)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("exact-match accuracy (%)")
    axes[-1].legend(fontsize=7, loc="lower left")
    fig.suptitle("Tiny STORM vs no-Mamba baseline at a fixed video-token budget (k = 4, test split)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def budget_table(accuracy: dict, settings: list[dict]) -> str:
    """Markdown: per frame count and video-token budget, the stride the processor picks, the tokens, each model's
    overall accuracy (from `accuracy`, the evaluate-tiny results; "-" where that stride was not evaluated) and median
    answer time. `settings`: [{"frames", "budget", "stride", "video_tokens", "latency_ms": {model: ms}}]."""
    names = list(settings[0]["latency_ms"]) if settings else []
    lines = [
        "| frames | budget | s | video tokens | "
        + " | ".join(f"{name} accuracy (%) | {name} ms per answer" for name in names)
        + " |",
        "|---" * (4 + 2 * len(names)) + "|",
    ]
    for row in settings:
        cells = []
        for name in names:
            scores = accuracy.get(name, {}).get(str(row["frames"]), {}).get(str(row["stride"]))
            cells += [f"{scores['overall']:.1f}" if scores else "-", f"{row['latency_ms'][name]:.0f}"]
        lines.append(
            f"| {row['frames']} | {row['budget']} | {row['stride']} | {row['video_tokens']} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)
