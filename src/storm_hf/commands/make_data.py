"""`storm-hf make-data`: render the synthetic temporal video QA dataset (videos + JSONL) into a folder."""

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="output folder: OUT/videos/<id>.mp4 and OUT/<split>.jsonl")
    parser.add_argument("--n", type=int, required=True, help="number of videos")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="first sample index inside the split's seed range (default 0); --seed S --n N writes indices "
        "S..S+N-1, so a second run with --seed S+N adds new videos",
    )
    parser.add_argument(
        "--split",
        choices=("train", "validation", "test"),
        default="train",
        help="which disjoint seed range to draw from, and the JSONL's name (default train)",
    )
    parser.add_argument("--frames", type=int, default=16, help="frames per video, a multiple of --pool (default 16)")
    parser.add_argument("--size", type=int, default=32, help="frame height and width in px, even (default 32)")
    parser.add_argument("--fps", type=float, default=8.0, help="frame rate of the written videos (default 8)")
    parser.add_argument(
        "--pool",
        type=int,
        default=4,
        help="the model's temporal pooling window k; first-appearance scenes put both objects inside one "
        "such window half of the time (default 4)",
    )
    parser.add_argument(
        "--types",
        default=None,
        help="comma-separated question types to cycle through (default: all; see docs/synthetic-data.md)",
    )


def run(args: argparse.Namespace) -> int:
    from storm_hf.data.synthetic import write_dataset

    path = write_dataset(
        args.n,
        args.seed,
        args.out,
        split=args.split,
        num_frames=args.frames,
        frame_size=args.size,
        fps=args.fps,
        pool_window=args.pool,
        question_types=args.types.split(",") if args.types else None,
    )
    print(f"wrote {args.n} videos to {path.parent / 'videos'} and their rows to {path}")
    return 0
