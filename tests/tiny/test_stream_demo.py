"""`storm-hf demo --stream` on any unidirectional model folder (here a randomly initialised tiny STORM), and its errors."""

import pytest
import torch

import storm_hf.tiny.recipe as recipe
from storm_hf.cli import main
from storm_hf.commands.stream_demo import fresh_flash_scene, true_count
from storm_hf.tiny.recipe import build_model, build_processor


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    processor = build_processor()
    saved = {}
    for name, unidirectional in (("stream", True), ("bidirectional", False)):
        folder = tmp_path_factory.mktemp(name)
        build_model(processor, unidirectional=unidirectional).save_pretrained(folder)
        processor.save_pretrained(folder)
        saved[name] = folder
    return saved


def test_the_true_count_grows_as_the_video_goes_on():
    question, frames, flashes = fresh_flash_scene(5, 16)
    assert question.startswith("How many times does the") and frames.shape == (16, 32, 32, 3)
    assert flashes == [4, 8]
    assert [true_count(flashes, seen) for seen in (4, 5, 8, 9, 16)] == ["(no flash yet)", "one", "one", "two", "two"]


def test_demo_stream_prints_each_moment(folders, capsys):
    torch.manual_seed(0)
    assert main(["demo", "--stream", "--model", str(folders["stream"]), "--index", "5", "--stride", "2"]) == 0
    out = capsys.readouterr().out
    assert "unidirectional, k=4, s=2, sampling keeps the last slot of each group" in out
    assert "test split, index 5), 16 frames of 32x32" in out and "flashes:   on frames [4, 8]" in out
    rows = [line.split("|") for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [int(row[0]) for row in rows] == [4, 8, 12, 16]
    assert [int(row[1]) for row in rows] == [0, 4, 4, 8]  # s = 2: a slot is committed when its group of 2 completes
    assert all(float(row[2]) > 0 and float(row[3]) > 0 for row in rows)
    assert [row[5].strip() for row in rows] == ["(no flash yet)", "one", "two", "two"]


def test_demo_stream_says_when_the_streaming_model_is_absent(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(recipe, "SHIPPED_STREAM_MODEL_DIR", tmp_path / "storm-tiny-stream")
    assert main(["demo", "--stream"]) == 2
    err = capsys.readouterr().err
    assert "no streaming model is shipped at" in err and "storm-hf train-tiny --unidirectional" in err


def test_demo_stream_refuses_a_bidirectional_model(folders, capsys):
    assert main(["demo", "--stream", "--model", str(folders["bidirectional"])]) == 2
    assert "cannot stream: its temporal encoder is bidirectional" in capsys.readouterr().err
