"""Sub-commands of the `storm-hf` command line; each module has `add_arguments(parser)` and `run(args)`."""

DTYPE_CHOICES = ("float32", "bfloat16", "float16")


def add_hub_folder_arguments(parser) -> None:
    """The options of every command that writes a Hub folder with `export_hub_folder`."""
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT_DIR")
    parser.add_argument("--max-shard-size", default="5GB", help="largest safetensors shard (default: 5GB)")
    parser.add_argument("--model-id", help="Hub id used in the model card's examples (default: OUT_DIR's name)")
