"""Sub-commands of the `storm-hf` command line; each module has `add_arguments(parser)` and `run(args)`."""

DTYPE_CHOICES = ("float32", "bfloat16", "float16")


def add_hub_folder_arguments(parser, *, license_required: bool) -> None:
    """The options of every command that writes a Hub folder with `export_hub_folder`, its model card's included.

    `license_required`: the weights are someone else's (converted or assembled), so their license is never assumed.
    """
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT_DIR")
    parser.add_argument("--max-shard-size", default="5GB", help="largest safetensors shard (default: 5GB)")
    parser.add_argument("--model-id", help="Hub id used in the model card's examples (default: OUT_DIR's name)")
    card = parser.add_argument_group("model card metadata")
    card.add_argument(
        "--license",
        required=license_required,
        help="license of the weights, as a Hub license id (apache-2.0, mit, other, ...)"
        + ("" if license_required else " (default: the source's model card's)"),
    )
    card.add_argument("--base-model", action="append", default=[], help="Hub id of a base model (repeatable)")
    card.add_argument("--dataset", action="append", default=[], help="Hub id of a training dataset (repeatable)")
    card.add_argument("--language", action="append", default=[], help="language it handles, e.g. en (repeatable)")


def card_info(args, **sections):
    """The `CardInfo` the card options describe, with `sections` (training, evaluation, ...) added."""
    from ..conversion.model_card import CardInfo

    return CardInfo(
        license=args.license, base_models=args.base_model, datasets=args.dataset, language=args.language, **sections
    )
