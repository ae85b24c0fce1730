"""`storm-hf export SRC OUT_DIR`: a saved STORM model + processor to a Hub-ready folder."""

from pathlib import Path

from . import DTYPE_CHOICES, add_hub_folder_arguments


def add_arguments(parser) -> None:
    parser.add_argument("source", metavar="SRC", help="folder (or Hub id) with a saved STORM model and its processor")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="Hub folder to write (must not exist or be empty)")
    parser.add_argument("--dtype", choices=DTYPE_CHOICES, help="dtype of the written weights (default: the source's)")
    add_hub_folder_arguments(parser, license_required=False)


def run(args) -> int:
    from dataclasses import replace

    from transformers import AutoModelForImageTextToText, AutoProcessor

    from ..conversion.hub_export import export_hub_folder
    from ..conversion.model_card import CardInfo

    # The same weights: the source card's metadata carries over, the options given replace it.
    card = CardInfo.read(args.source) if Path(args.source).is_dir() else CardInfo()
    given = {"license": args.license, "base_models": args.base_model, "datasets": args.dataset}
    card = replace(card, **{key: value for key, value in {**given, "language": args.language}.items() if value})
    if card.license is None:
        raise ValueError(
            f"{args.source} states no license (no model card with one): pass --license with the license of its "
            "weights (a Hub license id: apache-2.0, mit, other, ...)."
        )
    model = AutoModelForImageTextToText.from_pretrained(args.source, dtype=args.dtype or "auto")
    processor = AutoProcessor.from_pretrained(args.source)
    out = export_hub_folder(
        model,
        processor,
        args.out_dir,
        max_shard_size=args.max_shard_size,
        overwrite=args.overwrite,
        model_id=args.model_id,
        card=card,
    )
    print(f"Exported {type(model).__name__} ({model.num_parameters():,} parameters) to {out}")
    return 0
