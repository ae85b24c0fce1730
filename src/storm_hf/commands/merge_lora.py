"""`storm-hf merge-lora BASE ADAPTER OUT`: fold a trained LoRA adapter into its base model, written as a Hub folder."""

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base", metavar="BASE", help="the STORM model folder or Hub id the adapter was trained on")
    parser.add_argument(
        "adapter", metavar="ADAPTER", help="the adapter folder (`storm-hf train --lora` writes OUTPUT_DIR/adapter)"
    )
    parser.add_argument("out", metavar="OUT", help="folder for the merged model")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")


def requirements(args: argparse.Namespace) -> list[str]:
    return ["peft"]


def run(args: argparse.Namespace) -> int:
    from storm_hf.training.merge import merge_lora

    out = merge_lora(args.base, args.adapter, args.out, overwrite=args.overwrite)
    print(f"merged {args.adapter} into {args.base}: wrote {out}")
    return 0
