"""Each shipped folder (`storm-tiny` and the streaming `storm-tiny-stream`) is what `storm_hf.tiny.shipping.ship`
writes from its own weights: its model card says what the model is, how it was trained and carries the measured
accuracy from the results file, and its configs name no code; `storm-hf ship-tiny` without results says what to run."""

import json

import pytest

from storm_hf.cli import main
from storm_hf.tiny.recipe import SHIPPED_MODEL_DIR, SHIPPED_STREAM_MODEL_DIR
from storm_hf.tiny.report import markdown_table
from storm_hf.tiny.shipping import ACCURACY_JSON, STREAM_ACCURACY_JSON, evaluated_name, evaluation_section, ship

# What transformers writes from the environment it runs in: loading arguments (tokenizer_config.json) and its own
# version (config.json, generation_config.json), so that the folder is checked on every supported release.
ENVIRONMENT_KEYS = {"is_local", "local_files_only", "transformers_version"}


def _written(config: dict) -> dict:
    return {key: value for key, value in config.items() if key not in ENVIRONMENT_KEYS}


# folder, its results file, and what its card must say about its size and its training
SHIPPED = {
    "storm-tiny": (SHIPPED_MODEL_DIR, ACCURACY_JSON, "0.59 M-parameter model (586,048 parameters)",
                   "Trained from scratch by `storm-hf train-tiny` ("),
    "storm-tiny-stream": (SHIPPED_STREAM_MODEL_DIR, STREAM_ACCURACY_JSON, "0.57 M-parameter model (574,016 parameters)",
                          "Trained from scratch by `storm-hf train-tiny --unidirectional` ("),
}


@pytest.fixture(scope="module", params=sorted(SHIPPED))
def shipped(request, tmp_path_factory):
    folder, accuracy_json, size, training = SHIPPED[request.param]
    reshipped = ship(folder, accuracy_json, out_dir=tmp_path_factory.mktemp("ship") / request.param)
    return folder, accuracy_json, size, training, reshipped


def test_the_shipped_folder_is_written_by_the_code(shipped):
    folder, *_, reshipped = shipped
    assert sorted(path.name for path in reshipped.iterdir()) == sorted(path.name for path in folder.iterdir())
    for path in reshipped.iterdir():
        original = folder / path.name
        if path.suffix == ".json":
            assert _written(json.loads(path.read_text())) == _written(json.loads(original.read_text())), (
                f"{path.name}: run `storm-hf ship-tiny {folder}`"
            )
        else:
            assert path.read_bytes() == original.read_bytes(), f"{path.name}: run `storm-hf ship-tiny {folder}`"


def test_the_card_says_what_the_model_is_and_how_it_scores(shipped):
    folder, accuracy_json, size, training, _ = shipped
    card = (folder / "README.md").read_text()
    assert f"{size} that only knows 32 px synthetic scenes" in card and training in card
    report = json.loads(accuracy_json.read_text())
    assert markdown_table(report["accuracy"]) in card
    assert f"{report['test_size']} fresh test videos per frame count" in card
    assert "license: apache-2.0" in card and "- en" in card


@pytest.mark.parametrize("model", sorted(SHIPPED))
def test_the_shipped_configs_pad_left_and_name_no_code(model):
    folder = SHIPPED[model][0]
    tokenizer = json.loads((folder / "tokenizer_config.json").read_text())
    assert tokenizer["padding_side"] == "left"
    for name in ("config.json", "tokenizer_config.json", "processor_config.json"):
        assert "auto_map" not in (folder / name).read_text(), name


def test_results_measured_on_other_weights_are_refused(shipped, tmp_path):
    _, accuracy_json, *_, reshipped = shipped
    name = evaluated_name(reshipped)
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.safetensors").write_bytes(b"other weights")
    report = {**json.loads(accuracy_json.read_text()), "models": {name: str(other)}}
    (tmp_path / "stale.json").write_text(json.dumps(report))
    with pytest.raises(ValueError, match="whose weights differ from"):
        evaluation_section(tmp_path / "stale.json", reshipped, name)
    assert evaluation_section(tmp_path / "missing.json", reshipped, name) is None


@pytest.mark.parametrize("model, name", [("storm-tiny", "storm"), ("storm-tiny-stream", "stream")])
def test_ship_tiny_without_results_says_which_evaluation_to_run(model, name, tmp_path, capsys):
    folder = SHIPPED[model][0]
    missing = tmp_path / "missing.json"
    assert main(["ship-tiny", str(folder), "--accuracy", str(missing)]) == 2
    assert f"run `storm-hf evaluate-tiny --model {name}={folder} ... --json {missing}` first" in capsys.readouterr().err
