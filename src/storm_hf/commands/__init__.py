"""Sub-commands of the `storm-hf` command line; each module has `add_arguments(parser)` and `run(args)`."""
