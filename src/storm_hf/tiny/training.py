"""`train_tiny`: build the tiny STORM from scratch and train it with the project's Trainer on fresh rendered scenes.

Every trained part learns from scratch at one learning rate. The training rows are scenes rendered on the fly, a
new one for every sample, in the stages of a curriculum (`scene_stream`); each batch is rendered at a frame count and
encoded at a test-time sampling stride, cycling through `clips` (the same for the model with and without Mamba
blocks). The validation split (real H.264 files) is scored during training at `validation_clips`; the test split is
never read here.
"""

import json
import math
from pathlib import Path

from ..data.describe import DESCRIBE
from ..data.questions import QUESTION_TYPES
from ..data.synthetic import write_dataset
from ..training.data import StormDataCollator
from .recipe import (
    CURRICULUM,
    FRAME_SIZE,
    NUM_FRAMES,
    TEMPORAL_POOL,
    TRAIN_CLIPS,
    VALIDATION_CLIPS,
    build_model,
    build_processor,
)
from .scene_stream import Clip, SceneStream, Stage


class ClipCollator(StormDataCollator):
    """A `StormDataCollator` for `SceneStream` batches: it encodes each batch at the frame count and sampling stride
    its rows were rendered for, which every row of a batch shares."""

    def __call__(self, rows: list[dict]):
        settings = {(row["num_frames"], row["temporal_sampling_stride"]) for row in rows}
        if len(settings) != 1:
            raise ValueError(
                f"A batch mixes clip settings (frames, stride) {sorted(settings)}: the model encodes a batch at one "
                "stride. Give the SceneStream block_size = the batch size."
            )
        ((frames, stride),) = settings
        self.frame_kwargs.update(num_frames=frames, temporal_sampling_stride=stride)
        return super().__call__(rows)


def copy_matching_weights(model, source) -> list[str]:
    """Copy every tensor of `model` from `source`, which must have each one under the same name and shape; returns the
    names of `source`'s tensors `model` has no place for (a bidirectional model's backward branch, for a
    unidirectional one)."""
    mine, theirs = model.state_dict(), source.state_dict()
    missing = sorted(name for name in mine if name not in theirs or theirs[name].shape != mine[name].shape)
    if missing:
        raise ValueError(
            f"Cannot start from a model that lacks {len(missing)} of this model's tensors or shapes, e.g. {missing[:3]}: "
            "start from a tiny STORM of the same recipe."
        )
    model.load_state_dict({name: theirs[name] for name in mine})
    return sorted(name for name in theirs if name not in mine)


def ensure_split(data_dir: Path, split: str, size: int, num_frames: int = NUM_FRAMES) -> Path:
    """`data_dir/<split>.jsonl` with samples 0..size-1 of `split`, rendered unless an identical one is there."""
    path = Path(data_dir) / f"{split}.jsonl"
    if path.is_file():
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        if len(rows) == size and all(row["num_frames"] == num_frames for row in rows):
            return path
    return write_dataset(size, 0, data_dir, split=split, num_frames=num_frames, pool_window=TEMPORAL_POOL)


def parse_curriculum(text: str) -> tuple[Stage, ...]:
    """`"direction=19200,direction+flash_count=25600,describe+all=51200"` -> stages (question types joined by `+`,
    `all` for every type, `describe` for describe rows, then `=` and the number of fresh scenes)."""
    stages = []
    for part in text.split(","):
        types, _, samples = part.strip().partition("=")
        names = tuple(n for name in types.split("+") for n in (QUESTION_TYPES if name == "all" else (name,)))
        unknown = [name for name in names if name not in (*QUESTION_TYPES, DESCRIBE)]
        if unknown or not samples.isdigit() or int(samples) < 1:
            raise ValueError(
                f"bad curriculum stage {part!r}: write TYPES=SAMPLES, TYPES being 'all' or question types joined by "
                f"'+' (from {list(QUESTION_TYPES)} and 'describe') and SAMPLES a positive number of scenes"
            )
        stages.append(Stage(names, int(samples)))
    return tuple(stages)


def parse_clips(text: str) -> tuple[Clip, ...]:
    """`"16x1,32x2,64x4"` -> clip settings: FRAMESxSTRIDE each (frames per scene, test-time sampling stride)."""
    clips = []
    for part in text.split(","):
        frames, sep, stride = part.strip().partition("x")
        if not sep or not frames.isdigit() or not stride.isdigit():
            raise ValueError(f"bad clip setting {part!r}: write FRAMESxSTRIDE, e.g. 32x2 (32 frames, stride 2)")
        clips.append(Clip(int(frames), int(stride)))
    return tuple(clips)


def format_clips(clips) -> str:
    """The inverse of `parse_clips`."""
    return ",".join(f"{clip.frames}x{clip.stride}" for clip in clips)


def format_curriculum(stages) -> str:
    """The inverse of `parse_curriculum`."""

    def types(names) -> str:
        questions = [name for name in names if name != DESCRIBE]
        if tuple(questions) == tuple(QUESTION_TYPES) and list(names[len(names) - len(questions) :]) == questions:
            return "+".join([DESCRIBE] * (len(names) - len(questions)) + ["all"])
        return "+".join(names)

    return ",".join(f"{types(stage.question_types)}={stage.samples}" for stage in stages)


def train_tiny(
    out_dir,
    *,
    temporal_layers: int = 2,
    curriculum=CURRICULUM,
    validation_size: int = 240,
    batch_size: int = 64,
    learning_rate: float = 2e-3,
    clips=TRAIN_CLIPS,
    validation_clips=VALIDATION_CLIPS,
    eval_every: int = 500,
    seed: int = 0,
    data_dir=None,
    max_steps: int = -1,
    num_workers: int = 1,
    unidirectional: bool = False,
    init_from=None,
) -> Path:
    """Train the tiny STORM (`temporal_layers=0`: the baseline; `unidirectional=True`: the streamable variant) into
    `out_dir/model`; returns that folder.

    `curriculum`: `Stage`s of fresh scenes, trained in order, each scene once (one step per `batch_size` of them,
    or `max_steps` if > 0); batch after batch cycles through the `Clip` settings `clips`. The validation split is
    rendered into `data_dir/frames<N>` (default `data_dir` = `out_dir/data`) for every frame count of
    `validation_clips` unless already there, and its accuracy at each of those settings, every `eval_every` steps and
    at the end, goes to `out_dir/validation.json` (keys `f<frames>_s<stride>`). `init_from`: a trained tiny STORM
    folder whose weights the model starts from (`copy_matching_weights`).
    """
    from transformers import TrainerCallback

    from ..training import StormTrainingArguments, build_trainer, save_trained
    from .evaluation import accuracy, evaluate_rows, load_rows

    out_dir = Path(out_dir)
    data_dir = Path(data_dir) if data_dir is not None else out_dir / "data"
    validation = {
        frames: load_rows(ensure_split(data_dir / f"frames{frames}", "validation", validation_size, frames))
        for frames in sorted({clip.frames for clip in validation_clips})
    }

    processor = build_processor()
    model = build_model(processor, temporal_layers, seed, unidirectional=unidirectional)
    if init_from is not None:
        from ..modeling.modeling_storm import StormForConditionalGeneration

        left_out = copy_matching_weights(model, StormForConditionalGeneration.from_pretrained(init_from))
        print(f"started from {init_from}; left out its {len(left_out)} tensors this model has no place for: {left_out}")
    scenes = SceneStream(
        curriculum, clips=clips, frame_size=FRAME_SIZE, pool_window=TEMPORAL_POOL, block_size=batch_size
    )
    steps = max_steps if max_steps > 0 else math.ceil(len(scenes) / batch_size)
    args = StormTrainingArguments(
        output_dir=str(out_dir),
        learning_rate=learning_rate,
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        # constant after a short warm-up (each stage brings new questions), decayed over the last 10% of the steps
        lr_scheduler_type="warmup_stable_decay",
        lr_scheduler_kwargs={"num_decay_steps": steps // 10},
        warmup_steps=min(30, steps // 10),
        weight_decay=0.01,
        seed=seed,
        logging_steps=50,
        save_strategy="no",
        report_to="none",
        dataloader_num_workers=num_workers,
        disable_tqdm=True,
    )
    trainer = build_trainer(model, processor, scenes, args)
    trainer.data_collator = ClipCollator(processor, max_length=args.max_length, seed=seed)
    curve = []

    class ValidationAccuracy(TrainerCallback):
        def on_step_end(self, train_args, state, control, model=None, **kwargs):
            if state.global_step % eval_every and state.global_step != state.max_steps:
                return
            point = {"step": state.global_step, "samples": state.global_step * batch_size}
            for clip in validation_clips:
                rows = validation[clip.frames]
                answers = evaluate_rows(model, processor, rows, num_frames=clip.frames, stride=clip.stride)
                point[f"f{clip.frames}_s{clip.stride}"] = accuracy(rows, answers)
            curve.append(point)
            print(f"validation accuracy: {json.dumps(point)}", flush=True)

    trainer.add_callback(ValidationAccuracy())
    result = trainer.train()
    model_dir = save_trained(trainer, out_dir / "model")
    summary = {
        "temporal_layers": temporal_layers,
        "unidirectional": unidirectional,
        "curriculum": format_curriculum(curriculum),
        "steps": steps,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "clips": format_clips(clips),
        "seed": seed,
        "init_from": None if init_from is None else str(init_from),
        "train_runtime_s": round(result.metrics["train_runtime"], 1),
        "validation": curve,
    }
    (out_dir / "validation.json").write_text(json.dumps(summary, indent=2) + "\n")
    return model_dir
