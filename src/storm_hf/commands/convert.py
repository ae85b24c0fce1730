"""`storm-hf convert RESEARCH_DIR OUT_DIR`: a STORM research checkpoint (VILA layout) to a Hub folder."""

import sys

from . import DTYPE_CHOICES, add_hub_folder_arguments, card_info


def add_arguments(parser) -> None:
    parser.add_argument(
        "research_dir",
        metavar="RESEARCH_DIR",
        help="research checkpoint: a folder with config.json + llm/ + vision_tower/ + mm_projector/, a folder with "
        "config.json + one state-dict file, or that file",
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", help="Hub folder to write (must not exist or be empty)")
    parser.add_argument(
        "--dtype", choices=DTYPE_CHOICES, help="dtype of the written weights (default: the checkpoint's)"
    )
    parser.add_argument("--tokenizer", help="tokenizer folder (default: llm/, or the checkpoint folder)")
    parser.add_argument("--no-verify", action="store_true", help="skip the parity checks against the research parts")
    add_hub_folder_arguments(parser, license_required=True)


def run(args) -> int:
    from ..conversion.convert import convert_research_checkpoint
    from ..conversion.research_checkpoint import ConversionError

    try:
        report = convert_research_checkpoint(
            args.research_dir,
            args.out_dir,
            dtype=args.dtype,
            tokenizer=args.tokenizer,
            verify=not args.no_verify,
            overwrite=args.overwrite,
            max_shard_size=args.max_shard_size,
            model_id=args.model_id,
            card=card_info(args),
        )
    except (ConversionError, OSError) as error:  # OSError: unreadable files, OUT_DIR not empty
        print(f"storm-hf convert: {error}", file=sys.stderr)
        return 1
    print(report.format())
    return 0
