"""`storm-hf train-tiny`: train the project's tiny STORM from scratch on the synthetic temporal video QA data.

`--temporal-layers 0` trains the baseline: the same model and tokens without Mamba blocks (a linear projector only).
`--unidirectional` trains the streamable variant: forward-only Mamba blocks, sampling keeping the last slot of each
group. `--ship` writes the result into the package as the model `storm-hf demo` (or, unidirectional, `storm-hf demo
--stream`) uses. docs/shipped-model.md, docs/streaming.md.
"""

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from storm_hf.tiny.recipe import CURRICULUM, TRAIN_CLIPS, VALIDATION_CLIPS
    from storm_hf.tiny.training import format_clips, format_curriculum

    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("--out", required=True, help="run folder: OUT/model (Hub folder), OUT/validation.json")
    parser.add_argument("--temporal-layers", type=int, default=2, help="Mamba blocks; 0 = linear projector only")
    parser.add_argument(
        "--unidirectional",
        action="store_true",
        help="forward-only Mamba blocks (a model that streams), test-time sampling keeping the last slot of each group",
    )
    parser.add_argument(
        "--curriculum",
        default=format_curriculum(CURRICULUM),
        help="training stages in order, TYPES=SCENES each: question types joined by '+' ('all' for the four, "
        "'describe' for a 'Describe the video.' row) and how many fresh scenes (each rendered once) the stage "
        "trains on",
    )
    parser.add_argument("--validation-size", type=int, default=240, help="validation videos (real H.264 files)")
    parser.add_argument("--eval-every", type=int, default=500, help="score the validation split every N steps")
    parser.add_argument("--max-steps", type=int, default=-1, help="if > 0, stop after this many steps")
    parser.add_argument("--batch-size", type=int, default=64, help="videos per step")
    parser.add_argument("--learning-rate", type=float, default=2e-3, help="one learning rate for every part")
    parser.add_argument(
        "--clips",
        default=format_clips(TRAIN_CLIPS),
        help="clip settings FRAMESxSTRIDE the training batches cycle through, one per batch (frames rendered per "
        "scene, test-time sampling stride the batch is encoded at); repeat a setting to train on it more often",
    )
    parser.add_argument(
        "--validation-clips",
        default=format_clips(VALIDATION_CLIPS),
        help="clip settings FRAMESxSTRIDE the validation split is scored at during training",
    )
    parser.add_argument("--seed", type=int, default=0, help="initialisation seed")
    parser.add_argument(
        "--init-from",
        help="start from the weights of a trained tiny STORM folder (e.g. the shipped one) instead of random ones; "
        "a bidirectional model's backward branch is left out when training --unidirectional",
    )
    parser.add_argument("--data", help="folder with (or for) frames<N>/validation.jsonl and its videos (default: OUT/data)")
    parser.add_argument("--num-workers", type=int, default=1, help="data-loader processes rendering scenes")
    parser.add_argument(
        "--ship",
        action="store_true",
        help="also write the trained model into the package: the demo's default (--unidirectional: demo --stream's); "
        "its card gets the test accuracy from `storm-hf ship-tiny` after `storm-hf evaluate-tiny`",
    )


def requirements(args: argparse.Namespace) -> list[str]:
    return ["accelerate"]  # the Trainer


def run(args: argparse.Namespace) -> int:
    from storm_hf.tiny.shipping import ship
    from storm_hf.tiny.training import parse_clips, parse_curriculum, train_tiny

    model_dir = train_tiny(
        args.out,
        temporal_layers=args.temporal_layers,
        curriculum=parse_curriculum(args.curriculum),
        validation_size=args.validation_size,
        eval_every=args.eval_every,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        clips=parse_clips(args.clips),
        validation_clips=parse_clips(args.validation_clips),
        seed=args.seed,
        data_dir=args.data,
        num_workers=args.num_workers,
        unidirectional=args.unidirectional,
        init_from=args.init_from,
    )
    print(f"trained model: {model_dir}")
    if args.ship:
        # Not evaluated yet: `storm-hf evaluate-tiny`, then `storm-hf ship-tiny`, put the test accuracy in its card.
        shipped = ship(model_dir, accuracy_json=None)
        print(f"shipped to {shipped} (its card has no evaluation yet: run evaluate-tiny, then ship-tiny)")
    return 0
