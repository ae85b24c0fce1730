"""The synthetic temporal video QA data: determinism, splits, balance, format, and answers readable from pixels."""

import copy
import json
from collections import Counter

import av
import numpy as np
import pytest

from storm_hf.cli import main
from storm_hf.data.questions import QUESTION_TYPES
from storm_hf.data.scenes import FLASH_RGB, PALETTE, object_size, render
from storm_hf.data.synthetic import (
    SPLIT_SEED_BASE,
    SPLIT_SIZE,
    answer_vocabulary,
    build_dataset,
    load_jsonl_dataset,
    make_sample,
    question_texts,
    sample_seed,
    vocabulary_words,
    write_dataset,
)

SIZE = 32


@pytest.fixture(scope="module")
def dataset_16(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic16")
    return out, build_dataset(48, 0, out, split="train", num_frames=16, frame_size=SIZE)


def decode(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])  # (T, H, W, 3)


def colour_pixels(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per colour name (palette and 'flash'), a `(T, H, W)` mask of the pixels close to it."""
    targets = {**PALETTE, "flash": FLASH_RGB}
    return {
        name: np.abs(frames.astype(int) - np.asarray(rgb)).max(axis=-1) < 60 for name, rgb in targets.items()
    }


def read_answer(frames: np.ndarray, question_type: str, text: str) -> tuple[str, list[int]]:
    """Work out the answer and the deciding frames from decoded pixels alone."""
    present_min = object_size(frames.shape[1]) ** 2 // 4  # pixels for a shape to count as shown
    masks = colour_pixels(frames)
    shown = {name: np.flatnonzero(mask.sum(axis=(1, 2)) >= present_min) for name, mask in masks.items()}
    if question_type == "direction":
        colour = next(c for c in PALETTE if f" {c} " in text)
        ys, xs = [], []
        for mask in masks[colour]:
            y, x = np.nonzero(mask)
            ys.append(y.mean())
            xs.append(x.mean())
        dy, dx = ys[-1] - ys[0], xs[-1] - xs[0]
        direction = ("right" if dx > 0 else "left") if abs(dx) > abs(dy) else ("down" if dy > 0 else "up")
        return direction, list(range(len(frames)))
    if question_type == "first_appearance":
        named = [c for c in PALETTE if f" {c}" in text]
        assert sorted(named) == sorted(c for c in PALETTE if len(shown[c])), "named colours are the ones shown"
        first = min(named, key=lambda c: shown[c][0])
        return first, sorted(int(shown[c][0]) for c in named)
    if question_type == "flash_count":
        flashes = [int(t) for t in shown["flash"]]
        assert all(b - a >= 2 for a, b in zip(flashes, flashes[1:])), "flashes are single frames, apart"
        return ("one", "two", "three", "four")[len(flashes) - 1], flashes
    (colour,) = [c for c in PALETTE if len(shown[c]) == 1]
    return colour, [int(shown[colour][0])]


def test_same_seed_gives_identical_frames_rows_and_videos(tmp_path):
    question_a, frames_a = make_sample("train", 5)
    question_b, frames_b = make_sample("train", 5)
    assert np.array_equal(frames_a, frames_b)
    assert (question_a.text, question_a.answer, question_a.event_frames) == (
        question_b.text,
        question_b.answer,
        question_b.event_frames,
    )
    assert not np.array_equal(frames_a, make_sample("train", 9)[1]), "another index draws another scene"

    first = write_dataset(6, 3, tmp_path / "a", split="test")
    second = write_dataset(6, 3, tmp_path / "b", split="test")
    assert first.read_text() == second.read_text()
    for row in map(json.loads, first.read_text().splitlines()):
        assert np.array_equal(decode(first.parent / row["video"]), decode(second.parent / row["video"]))


def test_splits_draw_from_disjoint_seed_ranges():
    ranges = sorted((sample_seed(split, 0), sample_seed(split, SPLIT_SIZE - 1)) for split in SPLIT_SEED_BASE)
    for (_, last), (next_first, _) in zip(ranges, ranges[1:]):
        assert last < next_first
    with pytest.raises(ValueError, match="outside"):
        sample_seed("train", SPLIT_SIZE)
    with pytest.raises(ValueError, match="unknown split"):
        sample_seed("dev", 0)
    with pytest.raises(ValueError, match="outside"):
        write_dataset(2, SPLIT_SIZE - 1, "unused", split="validation")
    train_frames, validation_frames = make_sample("train", 0)[1], make_sample("validation", 0)[1]
    assert not np.array_equal(train_frames, validation_frames)


def test_answers_are_balanced_per_question_type():
    questions = [make_sample("train", index)[0] for index in range(480)]
    per_type = Counter(q.question_type for q in questions)
    assert per_type == {name: 120 for name in QUESTION_TYPES}
    for name, qtype in QUESTION_TYPES.items():
        answers = Counter(q.answer for q in questions if q.question_type == name)
        assert answers == {answer: 120 // len(qtype.answers) for answer in qtype.answers}, name

    # The first-appearance answer is not given away by the question's word order, and about half the scenes
    # put both objects inside one pooling window.
    order = [q for q in questions if q.question_type == "first_appearance"]
    named_first = np.mean([q.text.split(", ")[1].startswith(q.answer) for q in order])
    same_window = np.mean([q.event_frames[0] // 4 == (q.event_frames[1] + 1) // 4 for q in order])
    assert 0.35 < named_first < 0.65
    assert 0.35 < same_window < 0.65


def test_same_window_appearance_order_is_invisible_after_temporal_pooling():
    """Swapping the two showings changes the order but not the k=4 window averages, unless they lie apart."""
    checked = Counter()
    for index in range(1, 400, 4):  # first-appearance samples
        question, frames = make_sample("train", index)
        swapped = copy.deepcopy(question.sprites)
        swapped[0].visible, swapped[1].visible = swapped[1].visible, swapped[0].visible
        background = int(np.bincount(frames.ravel()).argmax())  # the grey covers most of every frame
        reordered = render(swapped, 16, SIZE, background)
        assert not np.array_equal(frames, reordered)
        pooled = frames.reshape(4, 4, SIZE, SIZE, 3).mean(axis=1)  # (T/k, H, W, 3)
        pooled_reordered = reordered.reshape(4, 4, SIZE, SIZE, 3).mean(axis=1)  # (T/k, H, W, 3)
        first, second = question.event_frames
        same_window = first // 4 == (second + 1) // 4
        assert np.array_equal(pooled, pooled_reordered) == same_window, question.event_frames
        checked[same_window] += 1
    assert checked[True] > 10 and checked[False] > 10


def assert_answers_readable(rows: list[dict], num_frames: int) -> None:
    assert {row["question_type"] for row in rows} == set(QUESTION_TYPES)
    for row in rows:
        frames = decode(row["video"])
        assert frames.shape == (num_frames, SIZE, SIZE, 3)
        text = row["messages"][0]["content"][1]["text"]
        answer, event_frames = read_answer(frames, row["question_type"], text)
        assert answer == row["answer"], (row["id"], text)
        assert event_frames == row["event_frames"], row["id"]


def test_answer_and_event_frames_can_be_read_from_the_decoded_16_frame_videos(dataset_16):
    assert_answers_readable(list(dataset_16[1]), 16)


def test_32_frame_videos_render_the_same_kinds_of_scenes(tmp_path):
    path = write_dataset(24, 100, tmp_path, split="test", num_frames=32, frame_size=SIZE)
    assert_answers_readable(list(load_jsonl_dataset(path)), 32)


def test_128_frame_videos_render_the_same_kinds_of_scenes(tmp_path):
    path = write_dataset(8, 300, tmp_path, split="test", num_frames=128, frame_size=SIZE)
    assert_answers_readable(list(load_jsonl_dataset(path)), 128)


@pytest.mark.parametrize("frames", [64, 128])
def test_events_of_long_clips_fall_anywhere_in_the_clip(frames):
    # every quarter of the clip holds events of every event-placed type, and the first showing is not always early
    quarters = {name: Counter() for name in ("first_appearance", "flash_count", "single_frame_colour")}
    for index in range(240):
        question, _ = make_sample("validation", index, num_frames=frames)
        if question.question_type in quarters:
            quarters[question.question_type].update(4 * frame // frames for frame in question.event_frames)
    for name, counts in quarters.items():
        assert sorted(counts) == [0, 1, 2, 3], (name, counts)
        assert min(counts.values()) >= 0.1 * sum(counts.values()), (name, counts)


def test_jsonl_rows_follow_the_training_format(dataset_16):
    out, dataset = dataset_16
    lines = (out / "train.jsonl").read_text().splitlines()
    assert len(lines) == len(dataset) == 48
    texts, vocabulary, words = set(question_texts()), set(answer_vocabulary()), set(vocabulary_words())
    for line, loaded in zip(lines, dataset):
        row = json.loads(line)
        assert row["video"] == f"videos/{row['id']}.mp4"
        assert (out / row["video"]).is_file()
        assert loaded["video"] == str((out / row["video"]).resolve())
        user, assistant = row["messages"]
        text = user["content"][1]["text"]
        assert user == {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": text}]}
        assert assistant == {"role": "assistant", "content": [{"type": "text", "text": row["answer"]}]}
        assert text in texts
        assert row["answer"] in vocabulary
        assert set(text.replace("?", " ?").replace(",", " ,").split()) <= words
        assert loaded["answer"] == row["answer"] and loaded["messages"][1] == assistant


def test_make_data_command_writes_n_rows_and_n_videos(tmp_path):
    assert main(["make-data", "--n", "5", "--seed", "7", "--split", "validation", "--frames", "32", str(tmp_path)]) == 0
    rows = [json.loads(line) for line in (tmp_path / "validation.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == [f"validation-{index:08d}" for index in range(7, 12)]
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == [f"{row['id']}.mp4" for row in rows]
    assert {row["num_frames"] for row in rows} == {32}


def test_bad_settings_and_missing_videos_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="multiple of pool_window"):
        make_sample("train", 0, num_frames=18)
    with pytest.raises(ValueError, match="even"):
        make_sample("train", 0, frame_size=33)
    with pytest.raises(ValueError, match="unknown question types"):
        make_sample("train", 0, question_types=["colour"])
    path = write_dataset(2, 0, tmp_path)
    (tmp_path / "videos" / "train-00000001.mp4").unlink()
    with pytest.raises(FileNotFoundError, match="line 2"):
        load_jsonl_dataset(path)
    with pytest.raises(FileNotFoundError, match="make-data"):
        load_jsonl_dataset(tmp_path / "missing.jsonl")
