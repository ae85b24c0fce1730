"""The HF `Trainer` for STORM: per-part learning rates, the stage or LoRA applied, and saving the result.

Because this is the stock `Trainer`, `accelerate launch` with a DeepSpeed or FSDP config, gradient checkpointing,
mixed precision, logging and resuming from a checkpoint work as for any transformers model (docs/training.md).
"""

import hashlib
import shutil
from pathlib import Path

import torch
from transformers import Trainer

from .arguments import StormTrainingArguments
from .data import StormDataCollator, load_training_dataset
from .stages import apply_lora, count_by_part, freeze_for_stage, parameter_groups, trainable_parameter_summary


class StormTrainer(Trainer):
    """`Trainer` whose optimizer gives each part of the model (vision tower, temporal encoder, language model) its
    own learning rate (`args.part_learning_rates`), never weight-decays the SSM's A and D, and whose training logs
    include `skipped_too_long`, the samples the collator skipped for exceeding `max_length`."""

    args: StormTrainingArguments

    def create_optimizer(self, model=None):
        if self.optimizer is None:
            opt_model = self.model if model is None else model
            rates = self.args.part_learning_rates
            groups = parameter_groups(
                opt_model, rates, self.args.weight_decay, self.get_decay_parameter_names(opt_model)
            )
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
            optimizer_kwargs["lr"] = max(rates.values())  # every group sets its own
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs and isinstance(self.data_collator, StormDataCollator):
            logs["skipped_too_long"] = self.data_collator.num_skipped
        super().log(logs, *args, **kwargs)


def build_trainer(model, processor, train_dataset, args: StormTrainingArguments, callbacks=None) -> StormTrainer:
    """Apply `args.stage` (freezing) or LoRA to `model`, and return a `StormTrainer` over `train_dataset` (rows as
    `load_training_dataset` gives them) with a `StormDataCollator` built from `processor` and `args`."""
    notes = []
    if args.lora:
        model, targets = apply_lora(
            model,
            rank=args.lora_rank,
            alpha=args.lora_alpha,
            dropout=args.lora_dropout,
            include_vision=args.lora_vision,
            target_modules=args.lora_target_modules,
        )
        per_part = ", ".join(f"{part} {count}" for part, count in count_by_part(targets).items())
        notes.append(f"LoRA (rank {args.lora_rank}, alpha {args.lora_alpha}) on {len(targets)} modules: {per_part}")
    else:
        freeze_for_stage(model, args.stage)
    notes.append(f"stage {args.stage}{' + LoRA' if args.lora else ''}; {trainable_parameter_summary(model)}")
    notes.append("learning rates: " + ", ".join(f"{part} {lr:g}" for part, lr in args.part_learning_rates.items()))
    collator = StormDataCollator(
        processor,
        max_length=args.max_length,
        frame_kwargs=args.frame_kwargs,
        dataset=train_dataset,
        seed=args.seed,
    )
    trainer = StormTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        data_collator=collator,
        processing_class=processor,
        callbacks=callbacks,
    )
    if trainer.is_world_process_zero():
        print("\n".join(notes))
    return trainer


def save_trained(trainer: StormTrainer, out_dir) -> Path:
    """Write the training result to `out_dir`: the LoRA adapter and the processor for a PEFT model, otherwise a
    complete Hub folder (weights, configs, processor, Hub code, model card). Call it on every process."""
    from transformers.integrations import is_deepspeed_zero3_enabled

    from ..conversion.hub_export import export_hub_folder
    from ..conversion.model_card import CardInfo

    out_dir = Path(out_dir)
    model = trainer.accelerator.unwrap_model(trainer.model)
    source = model.name_or_path or None  # the folder or Hub id training started from: its card's license carries over
    origin = f" from `{source}`" if source else ""
    card = CardInfo.read(source).derived(source, f"Trained{origin} with storm-hf (stage `{trainer.args.stage}`).")
    if hasattr(model, "peft_config"):
        trainer.save_model(str(out_dir))  # the adapter (gathered if sharded) and the processor
    elif trainer.is_fsdp_enabled or is_deepspeed_zero3_enabled():
        # Sharded weights: the Trainer gathers them into a plain folder, which the main process then exports.
        gathered = Path(trainer.args.output_dir) / ".gathered-weights"
        trainer.save_model(str(gathered))
        if trainer.is_world_process_zero():
            export_hub_folder(
                type(model).from_pretrained(gathered), trainer.processing_class, out_dir, overwrite=True, card=card
            )
            shutil.rmtree(gathered)
    elif trainer.is_world_process_zero():
        export_hub_folder(model, trainer.processing_class, out_dir, overwrite=True, card=card)
    trainer.accelerator.wait_for_everyone()
    return out_dir


def weights_fingerprint(model: torch.nn.Module) -> str:
    """sha256 of every parameter's bytes, in name order: equal fingerprints mean bit-identical weights."""
    digest = hashlib.sha256()
    for name, param in sorted(model.named_parameters()):
        digest.update(name.encode())
        digest.update(param.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def verify_replicas_agree(trainer: StormTrainer) -> None:
    """In data-parallel training every process must hold the same weights; check it once, at the end, by gathering
    each process's `weights_fingerprint`, so that a desynchronised run fails loudly instead of saving one process's
    weights. Sharded runs (FSDP, ZeRO-3) hold different shards by design and are not checked."""
    from transformers.integrations import is_deepspeed_zero3_enabled

    if trainer.args.world_size < 2 or trainer.is_fsdp_enabled or is_deepspeed_zero3_enabled():
        return
    fingerprint = weights_fingerprint(trainer.accelerator.unwrap_model(trainer.model))
    fingerprints = [None] * trainer.args.world_size
    torch.distributed.all_gather_object(fingerprints, fingerprint)
    if len(set(fingerprints)) > 1:
        listing = ", ".join(f"process {rank}: {value[:12]}" for rank, value in enumerate(fingerprints))
        raise RuntimeError(
            f"The data-parallel processes ended training with different weights ({listing}). A parameter that some "
            "processes do not update, or a step some processes skipped, desynchronised them; nothing was saved."
        )
    if trainer.is_world_process_zero():
        print(f"weights identical on all {len(fingerprints)} processes (sha256 {fingerprint[:12]})")


def train(
    model,
    data,
    args: StormTrainingArguments,
    *,
    processor=None,
    media_root=None,
    resume_from_checkpoint: str | bool | None = None,
) -> Path:
    """Train a STORM model on a video instruction dataset and save the result; returns where it was saved.

    `model`: a STORM folder or Hub id (or a loaded `StormForConditionalGeneration`, then `processor` is required);
    `data`: a JSON/JSONL file or a `datasets.Dataset` (see `load_training_dataset`); `resume_from_checkpoint`: a
    checkpoint folder, or True for the last one in `args.output_dir`. The result goes to `<output_dir>/adapter` with
    LoRA, else `<output_dir>/model` (a Hub folder).
    """
    from .. import StormForConditionalGeneration
    from ..processors.processing_storm import StormProcessor

    if isinstance(model, (str, Path)):
        processor = processor or model
        # fp32 master weights; bf16 comes from mixed precision (args.bf16)
        model = StormForConditionalGeneration.from_pretrained(model, dtype=torch.float32)
    if processor is None:
        raise ValueError("Give the processor (or a folder holding it) when `model` is an already loaded model.")
    if isinstance(processor, (str, Path)):
        processor = StormProcessor.from_pretrained(processor)
    dataset = load_training_dataset(data, media_root=media_root)
    trainer = build_trainer(model, processor, dataset, args)
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    verify_replicas_agree(trainer)
    out_dir = save_trained(trainer, Path(args.output_dir) / ("adapter" if args.lora else "model"))
    if trainer.is_world_process_zero():
        skipped = trainer.data_collator.num_skipped
        print(f"saved to {out_dir}; {skipped} sample(s) skipped for exceeding max_length={args.max_length} tokens")
    return out_dir
