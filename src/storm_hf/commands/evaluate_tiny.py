"""`storm-hf evaluate-tiny`: exact-match accuracy per question type of tiny STORM models on the test split, at
several frame counts and test-time sampling strides (each stride up to the frame count's temporal slots; with
`--slots`, keeping the first or the last slot of each group of s); writes a JSON, a Markdown table and a PNG plot of
accuracy against frames at fixed video-token budgets."""

import argparse


def _named_model(value: str) -> tuple[str, str]:
    name, sep, path = value.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=FOLDER (e.g. storm=runs/storm/model), got {value!r}")
    return name, path


def _integers(value: str) -> list[int]:
    try:
        return [int(item) for item in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {value!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument(
        "--model", type=_named_model, action="append", required=True, metavar="NAME=FOLDER",
        help="a model to score (repeat for several)",
    )
    parser.add_argument("--data", default="runs/tiny-test", help="folder for the test videos (rendered if missing)")
    parser.add_argument("--test-size", type=int, default=480, help="test videos per frame count (48 per balanced run)")
    parser.add_argument("--frames", type=_integers, default=[16, 32, 64, 128], help="frame counts, comma-separated")
    parser.add_argument(
        "--strides", type=_integers, default=[1, 2, 4, 8],
        help="sampling strides, comma-separated; a stride above a frame count's temporal slots is skipped there",
    )
    parser.add_argument(
        "--slots",
        type=lambda value: value.split(","),
        default=None,
        help="which slot of each group of s sampling keeps, comma-separated (first,last): each model is scored with "
        "each, as 'NAME, slot SLOT' (default: each model's own temporal_sampling_slot)",
    )
    parser.add_argument("--batch-size", type=int, default=48, help="questions per generate call")
    parser.add_argument("--json", default="benchmarks/results/tiny-accuracy.json", help="where the results go")
    parser.add_argument("--plot", help="where the plot goes (default: beside --json, the same name ending .png)")


def requirements(args: argparse.Namespace) -> list[str]:
    return ["matplotlib"]  # the accuracy plot


def run(args: argparse.Namespace) -> int:
    import json
    import time
    from pathlib import Path

    from storm_hf import StormForConditionalGeneration
    from storm_hf.processors.processing_storm import StormProcessor
    from storm_hf.tiny.evaluation import accuracy, evaluate_rows, load_rows
    from storm_hf.tiny.report import markdown_table, plot
    from storm_hf.tiny.training import ensure_split

    test_sets = {
        frames: load_rows(ensure_split(Path(args.data) / f"frames{frames}", "test", args.test_size, frames))
        for frames in args.frames
    }
    results = {}
    for model_name, folder in args.model:
        model = StormForConditionalGeneration.from_pretrained(folder)
        processor = StormProcessor.from_pretrained(folder)
        for slot in args.slots or [None]:
            name = model_name if slot is None else f"{model_name}, slot {slot}"
            results[name] = {}
            for frames, rows in test_sets.items():
                results[name][frames] = {}
                slots = processor.video_processor.num_video_slots(frames, 1)
                for stride in [s for s in args.strides if s <= slots]:
                    start = time.perf_counter()
                    answers = evaluate_rows(
                        model, processor, rows, num_frames=frames, stride=stride, batch_size=args.batch_size, slot=slot
                    )
                    scores = accuracy(rows, answers)
                    scores["video_tokens"] = processor.video_processor.num_video_tokens(frames, stride)
                    results[name][frames][stride] = scores
                    seconds = time.perf_counter() - start
                    print(f"{name} frames={frames} s={stride}: {scores} ({seconds:.0f} s)", flush=True)
    report = {"test_size": args.test_size, "models": dict(args.model), "accuracy": results}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(markdown_table(results))
    print(f"wrote {args.json} and {plot(results, args.plot or Path(args.json).with_suffix('.png'))}")
    return 0
