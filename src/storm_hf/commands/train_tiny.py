"""`storm-hf train-tiny`: train the project's tiny STORM from scratch on the synthetic temporal video QA data.

`--temporal-layers 0` trains the baseline: the same model and tokens without Mamba blocks (a linear projector only).
`--ship` writes the result into the package as the model `storm-hf demo` uses. docs/shipped-model.md.
"""

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("--out", required=True, help="run folder: OUT/model (Hub folder), OUT/validation.json")
    parser.add_argument("--temporal-layers", type=int, default=2, help="Mamba blocks; 0 = linear projector only")
    parser.add_argument("--train-size", type=int, default=4800, help="training videos (a multiple of 48 is balanced)")
    parser.add_argument("--validation-size", type=int, default=240, help="validation videos, scored every epoch")
    parser.add_argument("--epochs", type=float, default=4, help="training epochs")
    parser.add_argument("--max-steps", type=int, default=-1, help="if > 0, stop after this many steps")
    parser.add_argument("--batch-size", type=int, default=16, help="videos per step")
    parser.add_argument("--learning-rate", type=float, default=3e-3, help="one learning rate for every part")
    parser.add_argument(
        "--train-strides", default="1,2", help="test-time sampling strides the training batches are drawn at"
    )
    parser.add_argument(
        "--warmup-epochs", type=float, default=0, help="epochs over direction questions only before the full mix"
    )
    parser.add_argument("--seed", type=int, default=0, help="initialisation and data-order seed")
    parser.add_argument("--data", help="folder with (or for) train.jsonl and validation.jsonl (default: OUT/data)")
    parser.add_argument("--num-workers", type=int, default=1, help="data-loader processes decoding videos")
    parser.add_argument(
        "--ship", action="store_true", help="also write the trained model into the package (the demo's default)"
    )


def run(args: argparse.Namespace) -> int:
    from storm_hf.conversion.hub_export import export_hub_folder
    from storm_hf.processors.processing_storm import StormProcessor
    from storm_hf import StormForConditionalGeneration
    from storm_hf.tiny.recipe import SHIPPED_MODEL_DIR
    from storm_hf.tiny.training import train_tiny

    try:
        strides = tuple(int(s) for s in args.train_strides.split(","))
    except ValueError:
        raise ValueError(f"--train-strides must be comma-separated integers, got {args.train_strides!r}") from None
    model_dir = train_tiny(
        args.out,
        temporal_layers=args.temporal_layers,
        train_size=args.train_size,
        validation_size=args.validation_size,
        epochs=args.epochs,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        train_strides=strides,
        warmup_epochs=args.warmup_epochs,
        seed=args.seed,
        data_dir=args.data,
        num_workers=args.num_workers,
    )
    print(f"trained model: {model_dir}")
    if args.ship:
        model = StormForConditionalGeneration.from_pretrained(model_dir)
        # The package itself provides the code: the shipped folder holds weights, configs and tokenizer only.
        processor = StormProcessor.from_pretrained(model_dir)
        export_hub_folder(model, processor, SHIPPED_MODEL_DIR, overwrite=True, include_code=False)
        print(f"shipped to {SHIPPED_MODEL_DIR}")
    return 0
