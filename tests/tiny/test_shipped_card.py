"""The shipped folder is what `storm_hf.tiny.shipping.ship` writes from its own weights: its model card says what the
model is and carries the measured accuracy from the results file, and its configs name no code."""

import json

import pytest

from storm_hf.tiny.recipe import SHIPPED_MODEL_DIR
from storm_hf.tiny.report import markdown_table
from storm_hf.tiny.shipping import ACCURACY_JSON, evaluation_section, ship

# Loading arguments transformers writes into tokenizer_config.json from the environment it loaded in.
LOADING_KEYS = {"is_local", "local_files_only"}


@pytest.fixture(scope="module")
def reshipped(tmp_path_factory):
    return ship(SHIPPED_MODEL_DIR, ACCURACY_JSON, out_dir=tmp_path_factory.mktemp("ship") / "storm-tiny")


def test_the_shipped_folder_is_written_by_the_code(reshipped):
    assert sorted(path.name for path in reshipped.iterdir()) == sorted(path.name for path in SHIPPED_MODEL_DIR.iterdir())
    for path in reshipped.iterdir():
        shipped = SHIPPED_MODEL_DIR / path.name
        if path.name == "tokenizer_config.json":
            drop = lambda config: {key: value for key, value in config.items() if key not in LOADING_KEYS}  # noqa: E731
            assert drop(json.loads(path.read_text())) == drop(json.loads(shipped.read_text()))
        else:
            assert path.read_bytes() == shipped.read_bytes(), f"{path.name}: run `storm-hf ship-tiny`"


def test_the_card_says_what_the_model_is_and_how_it_scores(reshipped):
    card = (SHIPPED_MODEL_DIR / "README.md").read_text()
    assert "0.59 M-parameter model (586,048 parameters) that only knows 32 px synthetic scenes" in card
    report = json.loads(ACCURACY_JSON.read_text())
    assert markdown_table(report["accuracy"]) in card
    assert f"{report['test_size']} fresh test videos per frame count" in card
    assert "license: apache-2.0" in card and "- en" in card


def test_the_shipped_configs_pad_left_and_name_no_code():
    tokenizer = json.loads((SHIPPED_MODEL_DIR / "tokenizer_config.json").read_text())
    assert tokenizer["padding_side"] == "left"
    for name in ("config.json", "tokenizer_config.json", "processor_config.json"):
        assert "auto_map" not in (SHIPPED_MODEL_DIR / name).read_text(), name


def test_results_measured_on_other_weights_are_refused(reshipped, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.safetensors").write_bytes(b"other weights")
    report = {**json.loads(ACCURACY_JSON.read_text()), "models": {"storm": str(other)}}
    (tmp_path / "stale.json").write_text(json.dumps(report))
    with pytest.raises(ValueError, match="whose weights differ from"):
        evaluation_section(tmp_path / "stale.json", reshipped)
    assert evaluation_section(tmp_path / "missing.json", reshipped) is None
