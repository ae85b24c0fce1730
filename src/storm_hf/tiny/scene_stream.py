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
"""

from dataclasses import dataclass

import torch

from ..data.describe import DESCRIBE, describe, describe_messages
from ..data.questions import QUESTION_TYPES
from ..data.synthetic import make_sample, sample_row


@dataclass(frozen=True)
class Stage:
    """`samples` fresh scenes whose questions cycle through `question_types` (question types and `describe`)."""

    question_types: tuple[str, ...]
    samples: int


class SceneStream(torch.utils.data.IterableDataset):
    """Training rows `{"id", "video": (T, H, W, 3) uint8 frames, "messages", "question_type", "answer", ...}`, stage
    after stage, starting at sample index `first_index` of the `train` split.

    With several data-loader workers, worker w of W yields the blocks of `block_size` consecutive rows whose block
    number is w modulo W, so each batch holds consecutive rows (every question type, every answer) and the stages
    follow each other in the same order as with one process.

    A describe row carries its description at stride 1 and at every sampling stride in `describe_strides` (the
    strides training batches are drawn at).
    """

    def __init__(
        self,
        stages,
        *,
        num_frames: int,
        frame_size: int,
        pool_window: int,
        first_index=0,
        block_size=1,
        describe_strides=(1,),
    ):
        self.stages = tuple(stages)
        if not self.stages or any(stage.samples < 1 for stage in self.stages):
            raise ValueError(f"every stage needs at least one sample, got {self.stages}")
        self.num_frames, self.frame_size, self.pool_window = num_frames, frame_size, pool_window
        self.first_index, self.block_size = first_index, block_size
        self.describe_strides = tuple(sorted({1, *describe_strides}))
        slots = num_frames // pool_window
        uneven = [stride for stride in self.describe_strides if slots % stride]
        if uneven and any(DESCRIBE in stage.question_types for stage in self.stages):
            raise ValueError(
                f"Describe rows cannot be described at sampling stride {uneven[0]}: the {slots} temporal slots of "
                f"{num_frames} frames at temporal pooling {pool_window} do not fall into groups of {uneven[0]}. "
                f"Use strides that divide {slots}, or a curriculum without describe stages."
            )

    def __len__(self) -> int:
        return sum(stage.samples for stage in self.stages)

    def row(self, index: int, question_types) -> dict:
        """Sample `index`; a `describe` row carries `descriptions`: {stride: its description at that stride}."""
        row_type = question_types[index % len(question_types)]
        if DESCRIBE in question_types:  # one type per row: scenes of the stage's question types, cycling
            scene_types = tuple(name for name in question_types if name != DESCRIBE) or tuple(QUESTION_TYPES)
            question_types = scene_types if row_type == DESCRIBE else (row_type,)
        question, frames = make_sample(
            "train", index, self.num_frames, self.frame_size, self.pool_window, question_types
        )
        row = {**sample_row(f"train-{index:08d}", question, self.num_frames), "video": frames}
        if row_type == DESCRIBE:
            # per sampling stride s, what each kept token stands for: the k * s frames up to the next kept slot
            texts = {
                stride: describe(question.sprites, self.num_frames, self.frame_size, self.pool_window, stride)
                for stride in self.describe_strides
            }
            text = texts[1]
            row.update(question_type=DESCRIBE, answer=text, messages=describe_messages(text), descriptions=texts)
        return row

    def __iter__(self):
        worker = torch.utils.data.get_worker_info()
        rank, workers = (0, 1) if worker is None else (worker.id, worker.num_workers)
        position, start = 0, self.first_index
        for stage in self.stages:
            for index in range(start, start + stage.samples):
                if position // self.block_size % workers == rank:
                    yield self.row(index, stage.question_types)
                position += 1
            start += stage.samples
