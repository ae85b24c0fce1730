"""`storm-hf train`: train a STORM model on a video instruction dataset (the align or sft stage, or LoRA).

Runs on the HF Trainer: for several GPUs, `accelerate launch -m storm_hf.cli train ...` (or `torchrun`), with
`--deepspeed CONFIG` or `--fsdp --fsdp-config CONFIG` as needed (docs/training.md).
"""

import argparse
from dataclasses import fields

from storm_hf.training.arguments import StormTrainingArguments
from storm_hf.training.stages import STAGES

_DEFAULTS = {field.name: field.default for field in fields(StormTrainingArguments)}
# transformers renamed gradient_checkpointing to activation_checkpointing after 5.17
_CHECKPOINTING = "activation_checkpointing" if "activation_checkpointing" in _DEFAULTS else "gradient_checkpointing"

# command-line option -> StormTrainingArguments field, for the options passed on unchanged
_FIELDS = {
    "output_dir": "output_dir",
    "num_frames": "num_frames",
    "fps": "fps",
    "max_frames": "max_frames",
    "max_length": "max_length",
    "stage": "stage",
    "lora": "lora",
    "lora_rank": "lora_rank",
    "lora_alpha": "lora_alpha",
    "lora_dropout": "lora_dropout",
    "lora_vision": "lora_vision",
    "lora_target_modules": "lora_target_modules",
    "learning_rate": "learning_rate",
    "vision_lr": "vision_learning_rate",
    "temporal_lr": "temporal_learning_rate",
    "language_lr": "language_learning_rate",
    "epochs": "num_train_epochs",
    "max_steps": "max_steps",
    "batch_size": "per_device_train_batch_size",
    "grad_accum": "gradient_accumulation_steps",
    "warmup": "warmup_steps",
    "scheduler": "lr_scheduler_type",
    "weight_decay": "weight_decay",
    "gradient_checkpointing": _CHECKPOINTING,
    "seed": "seed",
    "logging_steps": "logging_steps",
    "save_steps": "save_steps",
    "save_total_limit": "save_total_limit",
    "num_workers": "dataloader_num_workers",
    "report_to": "report_to",
    "deepspeed": "deepspeed",
    "fsdp": "fsdp",
    "fsdp_config": "fsdp_config",
}
_PART_LR = "learning rate of the {} (default: the stage's, see docs/training.md)"


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except unset (None) ones and switches."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _add(group, flag: str, **kwargs) -> None:
    """An option whose default is the StormTrainingArguments field's."""
    group.add_argument(flag, default=_DEFAULTS[_FIELDS[flag[2:].replace("-", "_")]], **kwargs)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = _HelpFormatter
    data = parser.add_argument_group("model and data")
    data.add_argument("--model", required=True, help="STORM model folder or Hub id to start from")
    data.add_argument("--processor", help="processor folder or Hub id (default: --model)")
    data.add_argument("--data", required=True, help="JSON/JSONL file of rows {video|image, messages}")
    data.add_argument("--media-root", help="folder the rows' media paths are relative to (default: the data file's)")
    data.add_argument(
        "--output-dir",
        required=True,
        help="checkpoints go to OUTPUT_DIR/checkpoint-N, the result to OUTPUT_DIR/model (a Hub folder) or "
        "OUTPUT_DIR/adapter (with --lora)",
    )
    frames = data.add_mutually_exclusive_group()
    frames.add_argument("--num-frames", type=int, help="frames sampled per video, a multiple of the model's k")
    frames.add_argument("--fps", type=float, help="frames sampled per second of video (up to --max-frames)")
    data.add_argument("--max-frames", type=int, help="most frames per video (default: the processor's)")
    _add(
        data,
        "--max-length",
        type=int,
        help="longest sample in tokens, video tokens included; longer samples are skipped and counted, never truncated",
    )

    stage = parser.add_argument_group("what trains")
    _add(stage, "--stage", choices=STAGES, help="align: only the temporal encoder trains; sft: everything trains")
    stage.add_argument("--lora", action="store_true", help="train LoRA adapters on the LLM and Mamba projections")
    _add(stage, "--lora-rank", type=int, help="LoRA rank")
    _add(stage, "--lora-alpha", type=int, help="LoRA alpha")
    _add(stage, "--lora-dropout", type=float, help="LoRA dropout")
    stage.add_argument("--lora-vision", action="store_true", help="also put LoRA on the vision tower's attention/MLP")
    stage.add_argument("--lora-target-modules", help="a regex over full module paths replacing the LoRA targets")

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--learning-rate", type=float, help="one learning rate for every trained part")
    optim.add_argument("--vision-lr", type=float, help=_PART_LR.format("vision tower"))
    optim.add_argument("--temporal-lr", type=float, help=_PART_LR.format("temporal encoder"))
    optim.add_argument("--language-lr", type=float, help=_PART_LR.format("language model"))
    _add(optim, "--epochs", type=float, help="training epochs")
    _add(optim, "--max-steps", type=int, help="if > 0, stop after this many optimizer steps (overrides --epochs)")
    _add(optim, "--batch-size", type=int, help="samples per device and step")
    _add(optim, "--grad-accum", type=int, help="gradient accumulation steps")
    _add(optim, "--warmup", type=float, help="linear warmup: a share of the steps (< 1) or a number of steps")
    _add(optim, "--scheduler", help="learning-rate schedule")
    _add(optim, "--weight-decay", type=float, help="AdamW weight decay")
    optim.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations to save memory")
    optim.add_argument(
        "--bf16", choices=("auto", "on", "off"), default="auto", help="bf16 mixed precision; auto: where the GPU has it"
    )
    _add(optim, "--seed", type=int, help="random seed")

    run_group = parser.add_argument_group("running, saving, distributed")
    _add(run_group, "--logging-steps", type=float, help="log the loss every N steps")
    _add(run_group, "--save-steps", type=float, help="save a checkpoint every N steps")
    run_group.add_argument("--save-total-limit", type=int, help="keep only the last N checkpoints")
    run_group.add_argument(
        "--resume",
        nargs="?",
        const=True,
        metavar="CHECKPOINT",
        help="resume from CHECKPOINT, or from the last checkpoint in --output-dir when no folder is given",
    )
    _add(run_group, "--num-workers", type=int, help="data-loader processes decoding videos")
    _add(run_group, "--report-to", help="where logs go besides the console: tensorboard, wandb, ...")
    run_group.add_argument("--deepspeed", help="DeepSpeed config JSON (without optimizer and scheduler sections)")
    run_group.add_argument("--fsdp", nargs="?", const=True, metavar="MODE", help="shard the model with FSDP")
    run_group.add_argument("--fsdp-config", help="FSDP config JSON (with --fsdp)")


def training_arguments(args: argparse.Namespace) -> StormTrainingArguments:
    """The `StormTrainingArguments` the command line describes."""
    values = {field: getattr(args, option) for option, field in _FIELDS.items()}
    values["bf16"] = {"auto": None, "on": True, "off": False}[args.bf16]
    for optional in ("deepspeed", "fsdp", "fsdp_config"):  # the Trainer's own defaults when not given
        if values[optional] is None:
            del values[optional]
    return StormTrainingArguments(**values)


def requirements(args: argparse.Namespace) -> list[str]:
    return ["accelerate", "datasets"] + (["peft"] if args.lora else [])  # the Trainer, the data files, LoRA


def run(args: argparse.Namespace) -> int:
    from storm_hf.training.trainer import train

    train(
        args.model,
        args.data,
        training_arguments(args),
        processor=args.processor,
        media_root=args.media_root,
        resume_from_checkpoint=args.resume,
    )
    return 0
