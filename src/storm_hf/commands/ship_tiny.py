"""`storm-hf ship-tiny [MODEL_DIR]`: write a tiny STORM into the package as a shipped model (a bidirectional one as
`storm-tiny`, a unidirectional one as `storm-tiny-stream`), its model card's evaluation read from `storm-hf
evaluate-tiny`'s results. Without MODEL_DIR, the shipped `storm-tiny` folder's own files (card, configs, tokenizer)
are written anew from its weights."""

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from storm_hf.tiny.recipe import SHIPPED_MODEL_DIR
    from storm_hf.tiny.shipping import ACCURACY_JSON, STREAM_ACCURACY_JSON

    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("model_dir", nargs="?", default=str(SHIPPED_MODEL_DIR), metavar="MODEL_DIR",
                        help="the trained tiny model (train-tiny's OUT/model)")
    parser.add_argument("--accuracy",
                        help="evaluate-tiny's results for MODEL_DIR, the card's evaluation table (default: "
                        f"{ACCURACY_JSON}, or {STREAM_ACCURACY_JSON} for a unidirectional model)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from storm_hf.tiny.shipping import default_accuracy_json, evaluated_name, ship

    accuracy = Path(args.accuracy or default_accuracy_json(args.model_dir))
    if not accuracy.is_file():
        raise FileNotFoundError(
            f"--accuracy {accuracy}: no such file; run `storm-hf evaluate-tiny "
            f"--model {evaluated_name(args.model_dir)}={args.model_dir} ... --json {accuracy}` first"
        )
    print(f"shipped {args.model_dir} to {ship(args.model_dir, accuracy)}")
    return 0
