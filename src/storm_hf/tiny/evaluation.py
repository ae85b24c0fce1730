"""Exact-match accuracy of a tiny STORM on the synthetic video QA data, per question type.

Questions go to the model directly in batches (greedy decoding of a few tokens); an answer is right when it equals
the true answer after strip/lower. The demo and the shipped model's test go through the pipeline instead.
"""

import json
from collections import defaultdict
from pathlib import Path

import torch

from .recipe import MAX_NEW_TOKENS


def load_rows(jsonl_path) -> list[dict]:
    """The rows of a synthetic-data JSONL file, with `video` made an absolute path."""
    path = Path(jsonl_path)
    if not path.is_file():
        raise FileNotFoundError(f"no JSONL file at {path}; write one with `storm-hf make-data`")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for row in rows:
        row["video"] = str((path.parent / row["video"]).resolve())
    return rows


def _question(row: dict) -> list[dict]:
    """The row's user turn, with its video."""
    user = row["messages"][0]
    content = [{**item, "path": row["video"]} if item["type"] == "video" else item for item in user["content"]]
    return [{"role": "user", "content": content}]


@torch.inference_mode()
def evaluate_rows(
    model, processor, rows: list[dict], *, num_frames: int, stride: int, batch_size: int = 48, slot: str | None = None
) -> list[str]:
    """The model's answer to each row's question (stripped, lower case), `num_frames` frames at sampling `stride`,
    keeping the `slot` ("first" / "last") of each group of `stride` slots (None: the model's own setting)."""
    was_training = model.training
    model.eval()
    answers = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        inputs = processor.apply_chat_template(
            [_question(row) for row in batch],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs={"num_frames": num_frames, "temporal_sampling_stride": stride},
        ).to(model.device)
        generated = model.generate(
            **inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, temporal_sampling_slot=slot
        )
        new_tokens = generated[:, inputs["input_ids"].shape[1] :]
        answers += [text.strip().lower() for text in processor.batch_decode(new_tokens, skip_special_tokens=True)]
    model.train(was_training)
    return answers


def accuracy(rows: list[dict], answers: list[str]) -> dict[str, float]:
    """Exact-match accuracy (%) per question type and `overall`."""
    right, total = defaultdict(int), defaultdict(int)
    for row, answer in zip(rows, answers, strict=True):
        for key in (row["question_type"], "overall"):
            total[key] += 1
            right[key] += answer == row["answer"].strip().lower()
    return {key: round(100 * right[key] / total[key], 1) for key in total}
