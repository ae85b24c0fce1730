"""The model card and the exported files at Hub conventions: validated metadata, the sections good cards have, the
real install command, no guessed license, no code pointers in folders without code, files readable by all."""

import json
import re
import stat

import pytest
from huggingface_hub import ModelCard
from transformers import AutoProcessor

from storm_hf.cli import main
from storm_hf.conversion.hub_export import export_hub_folder
from storm_hf.conversion.model_card import CITATION, PAPER_URL, CardInfo

CODE_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
SECTIONS = ("## Use with transformers", "## Install storm-hf", "## Intended use and limitations",
            "## Training data and procedure", "## Evaluation", "## Citation")


@pytest.fixture(scope="module")
def described(tiny_model_and_processor, tmp_path_factory):
    card = CardInfo(
        license="mit", base_models=["org/siglip", "org/qwen2"], datasets=["org/videos"], language=["en", "fr"],
        training="Trained on org/videos for 2 epochs.", evaluation="| bench | 50.0 |",
    )
    return export_hub_folder(*tiny_model_and_processor, tmp_path_factory.mktemp("card") / "storm", card=card)


def test_metadata_is_written_and_read_by_huggingface_hub(described):
    data = ModelCard.load(described / "README.md").data
    assert (data.license, data.base_model, data.datasets, data.language) == (
        "mit", ["org/siglip", "org/qwen2"], ["org/videos"], ["en", "fr"]
    )
    assert (data.library_name, data.pipeline_tag) == ("transformers", "video-text-to-text")
    assert "custom_code" in data.tags


def test_the_card_has_the_sections_of_a_good_hub_card(described):
    card = (described / "README.md").read_text()
    positions = [card.index(section) for section in SECTIONS]
    assert positions == sorted(positions)
    assert "Trained on org/videos for 2 epochs." in card and "| bench | 50.0 |" in card
    assert PAPER_URL in card and "```bibtex\n" + CITATION + "\n```" in card
    assert "Jiang, Jindong" in CITATION and "arXiv:2503.04130" in CITATION


def test_the_card_leads_with_remote_code_and_gives_the_real_install_command(described):
    card = (described / "README.md").read_text()
    assert card.index("trust_remote_code=True") < card.index("## Install storm-hf")
    assert "pip install -e ." in card and "not on PyPI" in card
    assert not re.search(r"pip install [\"']?storm-hf", card)


def test_an_unknown_license_is_stated_not_guessed(tiny_model_and_processor, tmp_path):
    out = export_hub_folder(*tiny_model_and_processor, tmp_path / "storm")
    card = (out / "README.md").read_text()
    assert ModelCard.load(out / "README.md").data.license is None
    assert "License: **not stated**" in card and "apache" not in card.lower()
    assert "Not recorded with this folder" in card and "No evaluation was recorded" in card


def test_a_folder_without_code_names_no_code(hub_folder, tmp_path):
    """A processor loaded from a folder with code keeps its auto_map; a folder written without code drops it."""
    processor = AutoProcessor.from_pretrained(hub_folder)
    from storm_hf import StormForConditionalGeneration

    out = export_hub_folder(StormForConditionalGeneration.from_pretrained(hub_folder), processor, tmp_path / "plain",
                            include_code=False)
    for name in ("config.json", "tokenizer_config.json", "processor_config.json"):
        assert "auto_map" not in (out / name).read_text(), name
    assert "custom_pipelines" not in (out / "config.json").read_text()
    reloaded = AutoProcessor.from_pretrained(out)  # the installed package serves it
    assert type(reloaded).__module__.startswith("storm_hf.")


@pytest.mark.parametrize("include_code", [True, False])
def test_every_file_is_readable_by_all(tiny_model_and_processor, tmp_path, include_code):
    out = export_hub_folder(*tiny_model_and_processor, tmp_path / "storm", include_code=include_code)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in out.iterdir()}
    assert "model.safetensors" in modes and set(modes.values()) == {0o644}, modes


def test_the_lora_snippet_trains_on_the_answer_only(hub_folder, video_file, tmp_path, python_without_storm_hf,
                                                    tiny_model_and_processor):
    block = CODE_BLOCK.findall((hub_folder / "README.md").read_text())[3]
    assert "return_assistant_tokens_mask=True" in block
    (tmp_path / "video.mp4").write_bytes(video_file.read_bytes())
    result = python_without_storm_hf(block.replace('"tiny-storm"', repr(str(hub_folder))), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    answer_tokens = int(re.search(r"on (\d+) answer tokens", result.stdout).group(1))
    _, processor = tiny_model_and_processor
    assert answer_tokens == len(processor.tokenizer.encode("A square moves to the right.<|im_end|>"))


def test_export_carries_the_source_card_and_refuses_to_guess(described, tiny_model_and_processor, tmp_path, capsys):
    assert main(["export", str(described), str(tmp_path / "carried")]) == 0
    data = ModelCard.load(tmp_path / "carried" / "README.md").data
    assert (data.license, data.base_model, data.language) == ("mit", ["org/siglip", "org/qwen2"], ["en", "fr"])
    unstated = export_hub_folder(*tiny_model_and_processor, tmp_path / "unstated")
    assert main(["export", str(unstated), str(tmp_path / "refused")]) == 2
    assert "states no license" in capsys.readouterr().err and not (tmp_path / "refused").exists()
    assert main(["export", str(unstated), str(tmp_path / "given"), "--license", "cc-by-4.0", "--base-model", "a/b"]) == 0
    data = ModelCard.load(tmp_path / "given" / "README.md").data
    assert (data.license, data.base_model) == ("cc-by-4.0", ["a/b"])


def test_a_derived_model_keeps_the_license_and_names_its_base(described):
    card = CardInfo.read(described).derived("org/storm-base", "Fine-tuned on x.")
    assert (card.license, card.base_models, card.language, card.training) == ("mit", ["org/storm-base"], ["en", "fr"],
                                                                             "Fine-tuned on x.")
    assert CardInfo.read(described).derived(str(described), "local").base_models == []  # a folder is no Hub id
    assert CardInfo.read(None) == CardInfo()
    assert json.loads((described / "config.json").read_text())["auto_map"]  # this folder carries code
