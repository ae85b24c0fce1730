"""The accuracy table (Markdown) and plot (PNG) of `storm-hf evaluate-tiny` results.

Results: `{model name: {frames: {stride: {question type or "overall": accuracy %}}}}` (JSON keys are strings).
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


def plot(results: dict, path) -> Path:
    """Accuracy against the sampling stride, one panel per question type, a line per model and frame count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(COLUMNS), figsize=(4 * len(COLUMNS), 3.6), sharey=True)
    for axis, column in zip(axes, COLUMNS):
        for name, by_frames in results.items():
            for frames, by_stride in by_frames.items():
                strides = [int(s) for s in by_stride]
                axis.plot(
                    strides,
                    [by_stride[s][column] for s in by_stride],
                    marker="o",
                    linestyle="-" if "baseline" not in name else "--",
                    label=f"{name}, {frames} frames",
                )
                axis.set_xticks(strides)
        axis.set_title(column.replace("_", " "))
        axis.set_xlabel("test-time sampling stride s")
        axis.set_ylim(0, 102)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("exact-match accuracy (%)")
    axes[-1].legend(fontsize=8, loc="lower left")
    fig.suptitle("Tiny STORM vs no-Mamba baseline on synthetic temporal video QA (k = 4)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
