"""The `storm-hf` command. Each sub-command lives in its own module, imported only when it runs.

A plain install (`pip install -e .`) runs every command; a command that needs an optional package declares it
(`requirements(args)` in its module) and says what to install before it starts, never after hours of work.
"""

import argparse
import importlib
import importlib.util
import sys

# name -> (module, one-line help)
COMMANDS = {
    "demo": ("storm_hf.commands.demo", "Ask the shipped tiny STORM about a fresh synthetic video or your own"),
    "make-data": ("storm_hf.commands.make_data", "Render the synthetic temporal video QA dataset (videos + JSONL)"),
    "convert": ("storm_hf.commands.convert", "Convert a STORM research checkpoint (VILA layout) to a Hub folder"),
    "export": ("storm_hf.commands.export", "Write a saved STORM model and processor as a Hub-ready folder"),
    "init": ("storm_hf.commands.init", "Assemble a trainable STORM from a pretrained SigLIP model and a causal LM"),
    "train": ("storm_hf.commands.train", "Train on video instruction data: the align or sft stage, or LoRA"),
    "merge-lora": ("storm_hf.commands.merge_lora", "Merge a trained LoRA adapter into its base model (a Hub folder)"),
    "train-tiny": ("storm_hf.commands.train_tiny", "Train the tiny STORM (or its no-Mamba baseline) from scratch"),
    "ship-tiny": ("storm_hf.commands.ship_tiny", "Write a tiny STORM into the package, its card's scores included"),
    "evaluate-tiny": ("storm_hf.commands.evaluate_tiny", "Score tiny STORMs per question type, frame count and stride"),
    "benchmark": ("storm_hf.commands.benchmark", "Measure end-to-end latency, tokens and memory (benchmark e2e), or streaming (benchmark stream)"),
}


# Optional package -> the extra of setup.cfg that installs it.
EXTRAS = {"accelerate": "train", "datasets": "train", "peft": "train", "matplotlib": "bench"}


def missing_requirements(module, args) -> str | None:
    """What to install for this command, when a package it needs is missing; None when nothing is."""
    needed = getattr(module, "requirements", lambda args: [])(args)
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    extras = ",".join(sorted({EXTRAS[name] for name in missing}))
    return (
        f"this command needs {', '.join(missing)} (not installed): pip install -e \".[{extras}]\" in the storm-hf "
        f"checkout, or pip install {' '.join(missing)}"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="storm-hf", description="STORM video LLM for Hugging Face Transformers")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    module = importlib.import_module(args._module)
    missing = missing_requirements(module, args)
    if missing:
        print(f"storm-hf {args.command}: error: {missing}", file=sys.stderr)
        return 2
    try:
        return module.run(args) or 0
    except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError) as error:
        # Bad input: the message names the problem and the fix; a traceback would only hide it.
        print(f"storm-hf {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
