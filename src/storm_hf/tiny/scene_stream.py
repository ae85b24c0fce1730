"""Training scenes rendered on the fly: every training sample of the tiny STORM is a scene it has never seen.

Two measurements decided this (docs/shipped-model.md): a fixed set of a few thousand videos is memorised long
before the temporal questions are learned, and decoding an H.264 file costs about twice the tiny model's training
step per sample, while rendering a scene with numpy costs about 0.2 ms. The rows carry the rendered frames where a
file-based row carries its video path (`StormDataCollator` takes either); validation and test still read real video
files, so what is measured is the model on decoded H.264.

Training runs in stages (a curriculum): each stage draws its own range of sample indices of the `train` split, with
its question types cycling, so a stage is balanced over types and answers and no scene is drawn twice. A stage may
also cycle through `describe` rows: a scene of one of the stage's question types (all four if it names none) with
the dense "Describe the video." conversation instead of its question (`storm_hf.data.describe`).

Each block of `block_size` consecutive rows (one training batch) is rendered at one clip setting, a frame count and a
test-time sampling stride, cycling through the stream's `clips`: training mixes clip lengths and strides batch by
batch, and the rows of a batch share the setting the model encodes them at.
"""

from dataclasses import dataclass

import torch

from ..data.describe import DESCRIBE, describe, describe_messages
from ..data.questions import QUESTION_TYPES
from ..data.synthetic import make_sample, sample_row


@dataclass(frozen=True)
class Clip:
    """A training clip setting: `frames` rendered per scene, encoded at test-time sampling stride `stride`."""

    frames: int
    stride: int = 1


@dataclass(frozen=True)
class Stage:
    """`samples` fresh scenes whose questions cycle through `question_types` (question types and `describe`)."""

    question_types: tuple[str, ...]
    samples: int


class SceneStream(torch.utils.data.IterableDataset):
    """Training rows `{"id", "video": (T, H, W, 3) uint8 frames, "messages", "question_type", "answer",
    "temporal_sampling_stride", ...}`, stage after stage, starting at sample index `first_index` of the `train` split.

    Rows come in blocks of `block_size` (one batch): block b is rendered at `clips[b % len(clips)]`, its frame count
    and sampling stride. A describe row is described at its block's stride: each kept token stands for what its
    region showed in the k x s frames up to the next kept slot. With several data-loader workers, worker w of W yields
    the blocks whose number is w modulo W, so each batch holds consecutive rows (every question type, every answer)
    and the stages and clip settings follow each other in the same order as with one process.
    """

    def __init__(self, stages, *, clips, frame_size: int, pool_window: int, first_index=0, block_size=1):
        self.stages = tuple(stages)
        if not self.stages or any(stage.samples < 1 for stage in self.stages):
            raise ValueError(f"every stage needs at least one sample, got {self.stages}")
        self.clips = tuple(clips)
        self.frame_size, self.pool_window = frame_size, pool_window
        self.first_index, self.block_size = first_index, block_size
        if not self.clips:
            raise ValueError("give at least one clip setting (frames and sampling stride) to train at")
        describes = any(DESCRIBE in stage.question_types for stage in self.stages)
        for clip in self.clips:
            if clip.frames % pool_window or clip.frames < 2 * pool_window or clip.stride < 1:
                raise ValueError(
                    f"Cannot train at {clip.frames} frames and stride {clip.stride}: the frame count must be a "
                    f"multiple of the temporal pooling window {pool_window} holding at least two windows, and the "
                    "stride a positive integer."
                )
            slots = clip.frames // pool_window
            if describes and slots % clip.stride:
                raise ValueError(
                    f"Describe rows cannot be described at sampling stride {clip.stride}: the {slots} temporal slots "
                    f"of {clip.frames} frames at temporal pooling {pool_window} do not fall into groups of "
                    f"{clip.stride}. Use strides that divide {slots}, or a curriculum without describe stages."
                )

    def __len__(self) -> int:
        return sum(stage.samples for stage in self.stages)

    def clip(self, position: int) -> Clip:
        """The clip setting of the row at `position` (0 = the stream's first row)."""
        return self.clips[position // self.block_size % len(self.clips)]

    def row(self, index: int, question_types, clip: Clip) -> dict:
        """Sample `index` rendered at `clip`; a `describe` row's answer names what each kept video token holds."""
        row_type = question_types[index % len(question_types)]
        if DESCRIBE in question_types:  # one type per row: scenes of the stage's question types, cycling
            scene_types = tuple(name for name in question_types if name != DESCRIBE) or tuple(QUESTION_TYPES)
            question_types = scene_types if row_type == DESCRIBE else (row_type,)
        question, frames = make_sample(
            "train", index, clip.frames, self.frame_size, self.pool_window, question_types
        )
        row = {
            **sample_row(f"train-{index:08d}", question, clip.frames),
            "video": frames,
            "temporal_sampling_stride": clip.stride,
        }
        if row_type == DESCRIBE:
            text = describe(question.sprites, clip.frames, self.frame_size, self.pool_window, clip.stride)
            row.update(question_type=DESCRIBE, answer=text, messages=describe_messages(text))
        return row

    def __iter__(self):
        worker = torch.utils.data.get_worker_info()
        rank, workers = (0, 1) if worker is None else (worker.id, worker.num_workers)
        position, start = 0, self.first_index
        for stage in self.stages:
            for index in range(start, start + stage.samples):
                if position // self.block_size % workers == rank:
                    yield self.row(index, stage.question_types, self.clip(position))
                position += 1
            start += stage.samples
