"""`StormTrainingArguments`: the Trainer's arguments plus the stage, LoRA, per-part learning rates and video input."""

import os
from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments

from .stages import DEFAULT_LEARNING_RATES, LANGUAGE, LORA_DEFAULTS, STAGES, TEMPORAL, VISION


@dataclass
class StormTrainingArguments(TrainingArguments):
    """[`TrainingArguments`] for STORM, with defaults for video instruction tuning (1 epoch, 1 sample per device,
    cosine schedule, 3% warmup, bf16 where the GPU has it, 2 data-loader workers decoding videos) and:

    - `stage`: `"align"` (only the temporal encoder trains) or `"sft"` (everything trains).
    - `lora`: train LoRA adapters on the language model's attention/MLP projections and the Mamba projections
      instead (`lora_vision` adds the vision tower's; `lora_target_modules` replaces the targets with a regex).
    - `learning_rate`: one rate for every trained part, replacing the stage's defaults; `vision_learning_rate`,
      `temporal_learning_rate`, `language_learning_rate` set one part each. Defaults: see `DEFAULT_LEARNING_RATES`.
    - `num_frames`, or `fps` with `max_frames`: how the processor samples each video; `max_length`: the longest
      sample in tokens (video tokens included); longer samples are skipped and counted, never truncated.
    """

    stage: str = field(default="sft", metadata={"help": "align (temporal encoder only) or sft (everything)"})
    lora: bool = field(default=False, metadata={"help": "train LoRA adapters instead of full weights"})
    lora_rank: int = LORA_DEFAULTS["rank"]
    lora_alpha: int = LORA_DEFAULTS["alpha"]
    lora_dropout: float = LORA_DEFAULTS["dropout"]
    lora_vision: bool = False
    lora_target_modules: str | None = None
    learning_rate: float | None = None
    vision_learning_rate: float | None = None
    temporal_learning_rate: float | None = None
    language_learning_rate: float | None = None
    num_frames: int | None = None
    fps: float | None = None
    max_frames: int | None = None
    max_length: int = 8192
    # Trainer defaults changed for video instruction tuning
    num_train_epochs: float = 1.0
    per_device_train_batch_size: int = 1
    lr_scheduler_type: str = "cosine"
    warmup_steps: float = 0.03
    logging_steps: float = 10
    bf16: bool | None = None
    dataloader_num_workers: int = 2
    remove_unused_columns: bool = False

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ValueError(f"Unknown stage {self.stage!r}: choose one of {', '.join(STAGES)}.")
        if self.lora and self.stage == "align":
            raise ValueError(
                "The align stage trains the whole temporal encoder and freezes the rest; LoRA applies to the sft "
                "stage. Drop lora, or use stage='sft'."
            )
        if self.num_frames is not None and self.fps is not None:
            raise ValueError("Give either num_frames or fps (with max_frames), not both.")
        if self.remove_unused_columns:
            raise ValueError(
                "remove_unused_columns must stay False: the collator reads the dataset's video/image and messages "
                "columns, which are not model inputs."
            )
        if self.bf16 is None:
            self.bf16 = not self.fp16 and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        has_accelerator = torch.accelerator.is_available()
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not has_accelerator:
            # Several processes (torchrun, accelerate launch) on a machine without an accelerator: data parallel over
            # gloo on the CPU. Without use_cpu the Trainer would run each process on its own, every one training on
            # the same samples and saving to the same folder.
            self.use_cpu = True
        if not has_accelerator:
            # Pinned memory only speeds up copies to an accelerator; without one the DataLoader warns on every run.
            self.dataloader_pin_memory = False
        super().__post_init__()

    @property
    def part_learning_rates(self) -> dict[str, float]:
        """The learning rate of each part: the stage's defaults, `learning_rate`, then the per-part fields."""
        rates = DEFAULT_LEARNING_RATES["lora" if self.lora else self.stage]
        if self.learning_rate is not None:
            rates = dict.fromkeys(rates, self.learning_rate)
        overrides = {
            VISION: self.vision_learning_rate,
            TEMPORAL: self.temporal_learning_rate,
            LANGUAGE: self.language_learning_rate,
        }
        return {**rates, **{part: lr for part, lr in overrides.items() if lr is not None}}

    @property
    def frame_kwargs(self) -> dict:
        """The processor's frame-sampling settings (empty: the processor's own defaults)."""
        settings = {"num_frames": self.num_frames, "fps": self.fps, "max_frames": self.max_frames}
        return {key: value for key, value in settings.items() if value is not None}
