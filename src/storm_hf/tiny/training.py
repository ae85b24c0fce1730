"""`train_tiny`: render the synthetic data, build the tiny STORM from scratch and train it with the project's Trainer.

Every trained part learns from scratch at one learning rate. Each batch is encoded at a test-time sampling stride
drawn from `train_strides` (default 1 and 2, for the model with and without Mamba blocks alike), and the
validation split's accuracy is measured after every epoch; the test split is never read here.
"""

import json
import random
from pathlib import Path

from ..data.synthetic import write_dataset
from ..training.data import StormDataCollator
from .recipe import NUM_FRAMES, TEMPORAL_POOL, build_model, build_processor


class StrideMixingCollator(StormDataCollator):
    """A `StormDataCollator` that encodes each batch at one sampling stride drawn from `strides` (deterministically
    from the batch's first row and the seed)."""

    def __init__(self, processor, *, strides, **kwargs):
        super().__init__(processor, **kwargs)
        self.strides = tuple(strides)

    def __call__(self, rows: list[dict]):
        stride = random.Random(f"{self.seed}:{rows[0]['id']}").choice(self.strides)
        self.frame_kwargs["temporal_sampling_stride"] = stride
        return super().__call__(rows)


def ensure_split(data_dir: Path, split: str, size: int, num_frames: int = NUM_FRAMES) -> Path:
    """`data_dir/<split>.jsonl` with samples 0..size-1 of `split`, rendered unless an identical one is there."""
    path = Path(data_dir) / f"{split}.jsonl"
    if path.is_file():
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        if len(rows) == size and all(row["num_frames"] == num_frames for row in rows):
            return path
    return write_dataset(size, 0, data_dir, split=split, num_frames=num_frames, pool_window=TEMPORAL_POOL)


def train_tiny(
    out_dir,
    *,
    temporal_layers: int = 2,
    train_size: int = 4800,
    validation_size: int = 240,
    epochs: float = 4,
    batch_size: int = 16,
    learning_rate: float = 3e-3,
    train_strides=(1, 2),
    warmup_types=("direction",),
    warmup_epochs: float = 0,
    seed: int = 0,
    data_dir=None,
    max_steps: int = -1,
    num_workers: int = 1,
) -> Path:
    """Train the tiny STORM (`temporal_layers=0`: the baseline) into `out_dir/model`; returns that folder.

    With `warmup_epochs`, training starts with that many epochs over the `warmup_types` questions only. The data is
    rendered into `data_dir` (default `out_dir/data`) unless already there. The validation accuracy after
    each epoch goes to `out_dir/validation.json`.
    """
    from transformers import TrainerCallback

    from ..training import StormTrainingArguments, build_trainer, load_training_dataset, save_trained
    from .evaluation import accuracy, evaluate_rows

    out_dir = Path(out_dir)
    data_dir = Path(data_dir) if data_dir is not None else out_dir / "data"
    train_file = ensure_split(data_dir, "train", train_size)
    validation = [json.loads(line) for line in ensure_split(data_dir, "validation", validation_size).open()]
    for row in validation:
        row["video"] = str((data_dir / row["video"]).resolve())

    processor = build_processor()
    model = build_model(processor, temporal_layers, seed)

    def trainer_for(rows, epochs):
        args = StormTrainingArguments(
            output_dir=str(out_dir),
            learning_rate=learning_rate,
            num_train_epochs=epochs,
            max_steps=max_steps,
            per_device_train_batch_size=batch_size,
            warmup_steps=0.05,
            weight_decay=0.01,
            num_frames=NUM_FRAMES,
            seed=seed,
            logging_steps=20,
            save_strategy="no",
            report_to="none",
            dataloader_num_workers=num_workers,
            disable_tqdm=True,
        )
        trainer = build_trainer(model, processor, rows, args)
        trainer.data_collator = StrideMixingCollator(
            processor,
            strides=train_strides,
            max_length=args.max_length,
            frame_kwargs=args.frame_kwargs,
            dataset=rows,
            seed=seed,
        )
        return trainer

    dataset = load_training_dataset(train_file)
    if warmup_epochs:
        # Questions that need the video but no binding to the text first, so the LLM learns to read the video tokens.
        warmup_rows = dataset.filter(lambda row: row["question_type"] in warmup_types)
        trainer_for(warmup_rows, warmup_epochs).train()
    trainer = trainer_for(dataset, epochs)
    curve = []

    class ValidationAccuracy(TrainerCallback):
        def on_epoch_end(self, train_args, state, control, model=None, **kwargs):
            point = {"epoch": round(state.epoch, 2), "step": state.global_step}
            for stride in train_strides:
                answers = evaluate_rows(model, processor, validation, num_frames=NUM_FRAMES, stride=stride)
                point[f"s{stride}"] = accuracy(validation, answers)["overall"]
            model.train()
            curve.append(point)
            print(f"validation accuracy: {point}", flush=True)

    trainer.add_callback(ValidationAccuracy())
    result = trainer.train()
    model_dir = save_trained(trainer, out_dir / "model")
    summary = {
        "temporal_layers": temporal_layers,
        "train_size": train_size,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "train_strides": list(train_strides),
        "warmup": {"types": list(warmup_types), "epochs": warmup_epochs},
        "seed": seed,
        "train_runtime_s": round(result.metrics["train_runtime"], 1),
        "validation": curve,
    }
    (out_dir / "validation.json").write_text(json.dumps(summary, indent=2) + "\n")
    return model_dir
