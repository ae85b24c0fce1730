"""`storm-hf train-tiny` end to end on a handful of videos and two steps: it renders the data, trains, scores the
validation split and writes a folder that loads and answers."""

import json

import pytest

from storm_hf import StormForConditionalGeneration
from storm_hf.cli import main
from storm_hf.processors.processing_storm import StormProcessor
from storm_hf.tiny.evaluation import accuracy, evaluate_rows, load_rows


@pytest.mark.parametrize("temporal_layers", [2, 0])
def test_train_tiny_writes_a_loadable_model(tmp_path, temporal_layers):
    out = tmp_path / "run"
    argv = ["train-tiny", "--out", str(out), "--temporal-layers", str(temporal_layers), "--train-size", "8",
            "--validation-size", "4", "--max-steps", "2", "--batch-size", "4", "--num-workers", "0"]
    assert main(argv) == 0

    summary = json.loads((out / "validation.json").read_text())
    assert summary["temporal_layers"] == temporal_layers
    assert set(summary["validation"][-1]) == {"epoch", "step", "s1", "s2"}
    model = StormForConditionalGeneration.from_pretrained(out / "model")
    assert len(model.model.temporal_encoder.layers) == temporal_layers
    processor = StormProcessor.from_pretrained(out / "model")
    rows = load_rows(out / "data" / "validation.jsonl")
    answers = evaluate_rows(model, processor, rows, num_frames=16, stride=2)
    assert len(answers) == 4 and set(accuracy(rows, answers)) >= {"overall"}
