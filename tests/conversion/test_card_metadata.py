"""`storm-hf convert` and `storm-hf init` write third-party weights: their license is never assumed, and the license,
base models and datasets given reach the model card's metadata."""

import pytest
from huggingface_hub import ModelCard

from storm_hf.cli import main

CARD = ["--license", "llama3.1", "--base-model", "org/storm-research", "--dataset", "org/videos", "--language", "en"]


def test_convert_needs_the_license_and_passes_the_card_metadata_through(research_checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit) as refused:
        main(["convert", str(research_checkpoint), str(tmp_path / "guessed"), "--no-verify"])
    assert refused.value.code == 2 and "--license" in capsys.readouterr().err
    assert not (tmp_path / "guessed").exists()
    assert main(["convert", str(research_checkpoint), str(tmp_path / "out"), "--no-verify", *CARD]) == 0
    card = ModelCard.load(tmp_path / "out" / "README.md")
    assert (card.data.license, card.data.base_model, card.data.datasets, card.data.language) == (
        "llama3.1", ["org/storm-research"], ["org/videos"], ["en"]
    )
    assert "Converted with `storm-hf convert` from the research checkpoint" in card.text
    assert "parity not checked" in card.text


def test_init_needs_the_license_and_names_the_parts(parts, tmp_path, capsys):
    vision, llm = parts
    parts = ["--vision", str(vision), "--llm", str(llm), "--temporal-pool-size", "2"]
    with pytest.raises(SystemExit):
        main(["init", *parts, str(tmp_path / "guessed")])
    assert "--license" in capsys.readouterr().err
    assert main(["init", *parts, str(tmp_path / "out"), "--license", "other", "--base-model", "google/siglip"]) == 0
    card = ModelCard.load(tmp_path / "out" / "README.md")
    assert (card.data.license, card.data.base_model) == ("other", ["google/siglip"])  # local parts are no Hub ids
    assert "randomly initialised (seed 0) and **untrained**" in card.text
