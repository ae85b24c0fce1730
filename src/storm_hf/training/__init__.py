"""Training STORM on video instruction data with the HF Trainer: the paper's stages and PEFT LoRA.

    from storm_hf.training import StormTrainingArguments, train
    train("path/to/storm", "data/train.jsonl", StormTrainingArguments(output_dir="runs/x", lora=True, num_frames=32))

Names are imported on first use, so `storm_hf.training.stages` loads without the Trainer (the CLI reads its
defaults).
"""

import importlib

_EXPORTS = {
    "StormTrainingArguments": "arguments",
    "StormDataCollator": "data",
    "build_conversation": "data",
    "load_training_dataset": "data",
    "load_adapter_model": "merge",
    "merge_lora": "merge",
    "apply_lora": "stages",
    "freeze_for_stage": "stages",
    "lora_target_pattern": "stages",
    "parameter_groups": "stages",
    "StormTrainer": "trainer",
    "build_trainer": "trainer",
    "save_trained": "trainer",
    "train": "trainer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
