"""Answer time of tiny STORM models at fixed video-token budgets: for each frame count and budget, the stride the
processor picks (`max_video_tokens`), the video tokens, and the median time to answer one question end to end
through `pipeline("video-text-to-text")` (decoding the H.264 file, processing, generating), models side by side.

    python benchmarks/tiny_budget.py --model storm=FOLDER --model baseline=FOLDER --data runs/tiny-test

Uses the first `--videos` test videos that `storm-hf evaluate-tiny --data DIR` rendered (DIR/frames<N>/test.jsonl).
Every repetition times every model at every setting in turn, so a machine busy with other work slows them alike.
One torch thread. Joins the accuracy of the same (frames, stride) from `--accuracy` (evaluate-tiny's JSON) and
writes benchmarks/results/tiny-budget.json and a Markdown table (docs/shipped-model.md, "The token budget").
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from transformers import pipeline

from storm_hf.benchmarking.report import machine_info
from storm_hf.tiny.evaluation import load_rows
from storm_hf.tiny.report import budget_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, metavar="NAME=FOLDER")
    parser.add_argument("--data", default="runs/tiny-test", help="evaluate-tiny's --data folder")
    parser.add_argument("--frames", default="16,32,64,128")
    parser.add_argument("--budgets", default="8,16,32,64", help="video-token budgets (max_video_tokens)")
    parser.add_argument("--videos", type=int, default=8, help="questions timed per setting and repetition")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--accuracy", default="benchmarks/results/tiny-accuracy.json")
    parser.add_argument("--out", default="benchmarks/results/tiny-budget.json")
    args = parser.parse_args()
    torch.set_num_threads(1)

    models = dict(item.split("=", 1) for item in args.model)
    pipes = {name: pipeline("video-text-to-text", model=folder) for name, folder in models.items()}
    video_processor = next(iter(pipes.values())).processor.video_processor
    settings = []
    for frames in (int(f) for f in args.frames.split(",")):
        rows = load_rows(Path(args.data) / f"frames{frames}" / "test.jsonl")[: args.videos]
        seen = set()
        for budget in (int(b) for b in args.budgets.split(",")):
            stride = video_processor.stride_for_budget(frames, budget)
            if stride in seen:  # a budget above what the clip gives at a smaller one changes nothing
                continue
            seen.add(stride)
            settings.append({"frames": frames, "budget": budget, "stride": stride, "rows": rows,
                             "video_tokens": video_processor.num_video_tokens(frames, stride), "seconds": {}})

    for name, pipe in pipes.items():  # warm-up
        pipe(text="Describe the video.", videos=settings[0]["rows"][0]["video"], num_frames=settings[0]["frames"])
    for _ in range(args.repeats):
        for setting in settings:
            for name, pipe in pipes.items():
                for row in setting["rows"]:
                    start = time.perf_counter()
                    pipe(text=row["messages"][0]["content"][1]["text"], videos=row["video"],
                         num_frames=setting["frames"], max_video_tokens=setting["budget"])
                    setting["seconds"].setdefault(name, []).append(time.perf_counter() - start)

    for setting in settings:
        del setting["rows"]
        setting["latency_ms"] = {name: 1000 * statistics.median(times) for name, times in setting.pop("seconds").items()}
    accuracy = json.loads(Path(args.accuracy).read_text())["accuracy"] if Path(args.accuracy).is_file() else {}
    report = {"machine": machine_info("cpu"), "models": models, "videos": args.videos, "repeats": args.repeats,
              "settings": settings}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(budget_table(accuracy, settings))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
