"""The example scripts a user copies run on the shipped model and give what the pipeline gives."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import pipeline

from storm_hf.data.synthetic import VIDEO_OPTIONS, make_sample
from storm_hf.data.video_writer import write_video
from storm_hf.tiny.recipe import NUM_FRAMES, SHIPPED_MODEL_DIR

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Three fresh test-split videos and their questions, in a folder (one in a subfolder)."""
    folder = tmp_path_factory.mktemp("videos")
    found = []
    for number, index in enumerate((1_000_010, 1_000_011, 1_000_012)):
        question, frames = make_sample("test", index, num_frames=NUM_FRAMES)
        path = folder / ("nested" if number == 2 else ".") / f"video{number}.mp4"
        found.append((write_video(path, frames, fps=8.0, options=VIDEO_OPTIONS), question.text))
    return folder, found


@pytest.fixture(scope="module")
def answer():
    pipe = pipeline("video-text-to-text", model=str(SHIPPED_MODEL_DIR))

    def ask(video, question) -> str:
        [result] = pipe(text=question, videos=str(video), num_frames=NUM_FRAMES, max_new_tokens=64, return_full_text=False)
        return result["generated_text"].strip()

    return ask


def run(script: str, *args) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_video_qa_answers_each_question(videos, answer):
    _, [(video, question), (_, other), _] = videos
    printed = run("video_qa.py", video, question, other).stdout
    assert printed == f"Q: {question}\nA: {answer(video, question)}\nQ: {other}\nA: {answer(video, other)}\n"


def test_answer_folder_writes_one_line_per_video_in_batches(videos, answer, tmp_path):
    folder, found = videos
    question = found[0][1]
    result = run("answer_folder.py", folder, question, "--out", tmp_path / "answers.jsonl", "--batch-size", "2")
    rows = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_text().splitlines()]
    assert [row["video"] for row in rows] == sorted(str(video) for video, _ in found)
    assert all(row["answer"] == answer(row["video"], question) and row["question"] == question for row in rows)
    assert "3/3" in result.stderr  # the progress bar
