"""`storm-hf export SRC OUT_DIR`: a saved STORM model + processor to a Hub-ready folder."""

from . import DTYPE_CHOICES, add_hub_folder_arguments


def add_arguments(parser) -> None:
    parser.add_argument("source", metavar="SRC", help="folder (or Hub id) with a saved STORM model and its processor")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="Hub folder to write (must not exist or be empty)")
    parser.add_argument("--dtype", choices=DTYPE_CHOICES, help="dtype of the written weights (default: the source's)")
    add_hub_folder_arguments(parser)
    parser.add_argument("--license", default="apache-2.0", help="license in the model card's metadata")
    parser.add_argument("--base-model", action="append", default=[], help="base model Hub id for the card (repeatable)")


def run(args) -> int:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from ..conversion.hub_export import export_hub_folder

    model = AutoModelForImageTextToText.from_pretrained(args.source, dtype=args.dtype or "auto")
    processor = AutoProcessor.from_pretrained(args.source)
    out = export_hub_folder(
        model,
        processor,
        args.out_dir,
        max_shard_size=args.max_shard_size,
        overwrite=args.overwrite,
        model_id=args.model_id,
        license=args.license,
        base_models=args.base_model,
    )
    print(f"Exported {type(model).__name__} ({model.num_parameters():,} parameters) to {out}")
    return 0
