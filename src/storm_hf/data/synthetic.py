"""The synthetic temporal video QA dataset: rendered scenes, H.264 videos and one chat-format JSONL per split.

Layout written by `write_dataset` (the project's training format):

    OUT/videos/<id>.mp4
    OUT/<split>.jsonl     one row per video: {"id", "video": "videos/<id>.mp4" (relative to the JSONL),
                          "question_type", "answer", "messages", "num_frames", "event_frames"}

Sample `index` of a split is drawn from the seed `SPLIT_SEED_BASE[split] + index`, with 0 <= index <
SPLIT_SIZE, so the splits never share a seed. A dataset built with `seed=S, n=N` holds indices S .. S+N-1 of
its split: the same (split, index) always gives the same video and row, and a later `seed=S+N` continues
without repeats. The question type cycles with the index and the answer cycles within each type, so every
run of `len(types) * 12` consecutive indices is exactly balanced. See docs/synthetic-data.md.
"""

import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .questions import QUESTION_TYPES, Question, answer_vocabulary, question_texts, vocabulary_words
from .scenes import BACKGROUND_LEVELS, render
from .video_writer import write_video

__all__ = [
    "SPLIT_SEED_BASE",
    "SPLIT_SIZE",
    "answer_vocabulary",
    "build_dataset",
    "load_jsonl_dataset",
    "make_sample",
    "question_texts",
    "sample_row",
    "sample_seed",
    "vocabulary_words",
    "write_dataset",
]

SPLIT_SIZE = 100_000_000
SPLIT_SEED_BASE = {"train": 0, "validation": SPLIT_SIZE, "test": 2 * SPLIT_SIZE}
# Near-lossless H.264, so a colour seen on one frame or a one-frame flash survives the encode. Without macroblock-tree
# rate control: with it, x264 on these small frames now and then encodes the same frames to different P-frame pixels
# (about 1 file in 150), so a seed would not always give the same dataset. No B-frames: the files stay those the
# shipped model was trained and evaluated on.
VIDEO_OPTIONS = {"crf": "10", "x264-params": "mbtree=0", "bf": "0"}


def sample_seed(split: str, index: int) -> int:
    """The seed of sample `index` of `split`; the splits' seed ranges are disjoint."""
    if split not in SPLIT_SEED_BASE:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLIT_SEED_BASE)}")
    if not 0 <= index < SPLIT_SIZE:
        raise ValueError(f"sample index {index} is outside 0..{SPLIT_SIZE - 1} (lower --seed or --n)")
    return SPLIT_SEED_BASE[split] + index


def _check_settings(num_frames: int, frame_size: int, pool_window: int, question_types) -> tuple[str, ...]:
    """Validate the scene settings; return the question types to cycle through."""
    if pool_window < 2 or num_frames % pool_window or num_frames < 2 * pool_window:
        raise ValueError(
            f"num_frames={num_frames} must be a multiple of pool_window={pool_window} (>= 2) and hold at "
            "least two pooling windows"
        )
    if frame_size < 16 or frame_size % 2:
        raise ValueError(f"frame_size={frame_size} must be even and at least 16 (H.264 yuv420p needs even sizes)")
    question_types = tuple(question_types or QUESTION_TYPES)
    unknown = [name for name in question_types if name not in QUESTION_TYPES]
    if unknown or not question_types:
        raise ValueError(f"unknown question types {unknown}; choose from {list(QUESTION_TYPES)}")
    return question_types


def make_sample(
    split: str,
    index: int,
    num_frames: int = 16,
    frame_size: int = 32,
    pool_window: int = 4,
    question_types=None,
) -> tuple[Question, np.ndarray]:
    """Sample `index` of `split`: its question and its frames `(T, H, W, 3)` uint8 RGB."""
    question_types = _check_settings(num_frames, frame_size, pool_window, question_types)
    rng = np.random.default_rng(sample_seed(split, index))
    name = question_types[index % len(question_types)]
    qtype = QUESTION_TYPES[name]
    answer = qtype.answers[index // len(question_types) % len(qtype.answers)]
    question = qtype.generate(rng, answer, num_frames, frame_size, pool_window)
    background = int(rng.integers(BACKGROUND_LEVELS[0], BACKGROUND_LEVELS[1] + 1))
    return question, render(question.sprites, num_frames, frame_size, background)


def sample_row(sample_id: str, question: Question, num_frames: int) -> dict:
    """The training-format row of a sample (its video at `videos/<sample_id>.mp4`)."""
    return {
        "id": sample_id,
        "video": f"videos/{sample_id}.mp4",
        "question_type": question.question_type,
        "answer": question.answer,
        "messages": [
            {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question.text}]},
            {"role": "assistant", "content": [{"type": "text", "text": question.answer}]},
        ],
        "num_frames": num_frames,
        "event_frames": question.event_frames,
    }


def write_dataset(
    n: int,
    seed: int,
    out_dir: str | Path,
    split: str = "train",
    num_frames: int = 16,
    frame_size: int = 32,
    fps: float = 8.0,
    pool_window: int = 4,
    question_types=None,
) -> Path:
    """Render samples `seed .. seed+n-1` of `split` into `out_dir`; return the path of `<split>.jsonl`."""
    if n < 1 or seed < 0:
        raise ValueError(f"need n >= 1 and seed >= 0, got n={n}, seed={seed}")
    sample_seed(split, seed + n - 1)  # fails early if the range leaves the split's seeds
    out_dir = Path(out_dir)
    rows = []
    for index in tqdm(range(seed, seed + n), desc=f"rendering {split}", disable=None):
        question, frames = make_sample(split, index, num_frames, frame_size, pool_window, question_types)
        row = sample_row(f"{split}-{index:08d}", question, num_frames)
        write_video(out_dir / row["video"], frames, fps=fps, options=VIDEO_OPTIONS)
        rows.append(row)
    path = out_dir / f"{split}.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def load_jsonl_dataset(path: str | Path):
    """Read a JSONL written by `write_dataset` into a `datasets.Dataset`, with `video` made an absolute path."""
    try:
        import datasets
    except ImportError as error:
        raise ImportError("load_jsonl_dataset needs `datasets`: pip install 'storm-hf[train]'") from error
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no JSONL file at {path}; write one with `storm-hf make-data`")
    rows = []
    with path.open() as lines:
        for number, line in enumerate(lines, start=1):
            row = json.loads(line)
            video = (path.parent / row["video"]).resolve()
            if not video.is_file():
                raise FileNotFoundError(f"{path}, line {number}: video {row['video']!r} not found at {video}")
            rows.append({**row, "video": str(video)})
    return datasets.Dataset.from_list(rows)


def build_dataset(n: int, seed: int, out_dir: str | Path, split: str = "train", **settings):
    """Write the dataset (see `write_dataset` for `settings`) and return it as a `datasets.Dataset`."""
    return load_jsonl_dataset(write_dataset(n, seed, out_dir, split=split, **settings))
