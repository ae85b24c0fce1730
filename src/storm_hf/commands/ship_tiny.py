"""`storm-hf ship-tiny [MODEL_DIR]`: write a tiny STORM into the package as the shipped model, its model card's
evaluation read from `storm-hf evaluate-tiny`'s results. Without MODEL_DIR, the shipped folder's own files (card,
configs, tokenizer) are written anew from the shipped weights."""

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from storm_hf.tiny.recipe import SHIPPED_MODEL_DIR
    from storm_hf.tiny.shipping import ACCURACY_JSON

    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("model_dir", nargs="?", default=str(SHIPPED_MODEL_DIR), metavar="MODEL_DIR",
                        help="the trained tiny model (train-tiny's OUT/model)")
    parser.add_argument("--accuracy", default=str(ACCURACY_JSON),
                        help="evaluate-tiny's results for MODEL_DIR (the card's evaluation table)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from storm_hf.tiny.shipping import ship

    if not Path(args.accuracy).is_file():
        raise FileNotFoundError(
            f"--accuracy {args.accuracy}: no such file; run `storm-hf evaluate-tiny --model storm={args.model_dir} "
            "...` first (it writes benchmarks/results/tiny-accuracy.json)"
        )
    print(f"shipped {args.model_dir} to {ship(args.model_dir, args.accuracy)}")
    return 0
