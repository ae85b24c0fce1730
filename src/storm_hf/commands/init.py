"""`storm-hf init --vision V --llm L OUT_DIR`: a trainable STORM from a pretrained vision model and causal LM."""

import argparse
import sys

from . import DTYPE_CHOICES, add_hub_folder_arguments, card_info


def add_arguments(parser) -> None:
    parser.add_argument("--vision", required=True, help="SigLIP vision model: local folder or Hub id")
    parser.add_argument("--llm", required=True, help="causal language model with its tokenizer: local folder or Hub id")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="Hub folder to write (must not exist or be empty)")
    parser.add_argument("--temporal-pool-size", type=int, default=4, help="frames averaged per slot, k (default: 4)")
    parser.add_argument("--spatial-pool-size", type=int, default=1, help="spatial pooling window side (default: 1)")
    parser.add_argument("--num-layers", type=int, default=2, help="Mamba blocks in the temporal encoder (default: 2)")
    parser.add_argument(
        "--bidirectional",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="scan the clip both ways (default); --no-bidirectional gives a streamable encoder",
    )
    parser.add_argument("--vision-feature-layer", type=int, default=-2, help="vision hidden state used (default: -2)")
    parser.add_argument(
        "--dtype", choices=("auto", *DTYPE_CHOICES), default="auto", help="weights dtype (default: the LLM's)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the temporal encoder's initialisation")
    add_hub_folder_arguments(parser, license_required=True)


def run(args) -> int:
    from ..conversion.assemble import assemble_storm
    from ..conversion.research_checkpoint import ConversionError

    try:
        folder = assemble_storm(
            args.vision,
            args.llm,
            args.out_dir,
            temporal_pool_size=args.temporal_pool_size,
            spatial_pool_size=args.spatial_pool_size,
            num_layers=args.num_layers,
            bidirectional=args.bidirectional,
            vision_feature_layer=args.vision_feature_layer,
            dtype=args.dtype,
            seed=args.seed,
            overwrite=args.overwrite,
            max_shard_size=args.max_shard_size,
            model_id=args.model_id,
            card=card_info(args),
        )
    except (ConversionError, OSError) as error:  # OSError: a part that cannot be found or read, OUT_DIR not empty
        print(f"storm-hf init: {error}", file=sys.stderr)
        return 1
    print(f"Wrote a STORM model (temporal encoder randomly initialised) to {folder}")
    return 0
