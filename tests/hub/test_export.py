"""The exported folder: its files, sharding, atomic writes, and the `storm-hf export` command."""

import json

import pytest
import torch
from safetensors import safe_open

from storm_hf.cli import main
from storm_hf.conversion import hub_export
from storm_hf.conversion.hub_export import AUTO_MAP, export_hub_folder, hub_code_files


def test_config_names_every_auto_class_and_the_pipeline(hub_folder):
    config = json.loads((hub_folder / "config.json").read_text())
    assert config["auto_map"] == AUTO_MAP
    assert set(config["auto_map"]) == {
        "AutoConfig",
        "AutoModel",
        "AutoModelForImageTextToText",
        "AutoModelForMultimodalLM",
    }
    pipeline = config["custom_pipelines"]["video-text-to-text"]
    assert pipeline["impl"] == "pipeline_storm.StormVideoTextToTextPipeline"
    assert pipeline["pt"] == ["AutoModelForImageTextToText"]


def test_processor_configs_name_the_hub_code(hub_folder):
    processor = json.loads((hub_folder / "processor_config.json").read_text())
    assert processor["auto_map"]["AutoProcessor"] == "processing_storm.StormProcessor"
    assert processor["video_processor"]["auto_map"]["AutoVideoProcessor"] == "video_processing_storm.StormVideoProcessor"
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        assert (hub_folder / name).exists(), name


def test_hub_code_is_copied_flat(hub_folder):
    names = {path.name for path in hub_code_files()}
    assert {"configuration_storm.py", "modeling_storm.py", "mamba_scan.py", "processing_storm.py", "pipeline_storm.py"} <= names
    for name in names:
        assert (hub_folder / name).read_text() == next(p for p in hub_code_files() if p.name == name).read_text()


def test_weights_are_sharded_safetensors_with_an_index(hub_folder, tiny_model_and_processor):
    model, _ = tiny_model_and_processor
    index = json.loads((hub_folder / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1 and all(name.endswith(".safetensors") for name in shards)
    assert not list(hub_folder.glob("*.bin"))
    state = model.state_dict()
    for shard in shards:
        with safe_open(hub_folder / shard, framework="pt") as tensors:
            for key in tensors.keys():
                assert torch.equal(tensors.get_tensor(key), state[key]), key
    assert set(index["weight_map"]) == set(state)


def test_model_card_has_hub_metadata_and_usage(hub_folder):
    card = (hub_folder / "README.md").read_text()
    metadata = card.split("---")[1]
    for line in ("pipeline_tag: video-text-to-text", "library_name: transformers", "license: apache-2.0"):
        assert line in metadata
    for snippet in ("AutoModelForImageTextToText", 'pipeline("video-text-to-text"', "temporal_sampling_stride", "LoraConfig"):
        assert snippet in card
    assert '"tiny-storm"' in card  # the Hub id defaults to the folder's name


def test_exporting_into_a_non_empty_folder_is_refused_unless_overwrite(tiny_model_and_processor, tmp_path):
    model, processor = tiny_model_and_processor
    out = export_hub_folder(model, processor, tmp_path / "out")
    (out / "stale.txt").write_text("from an earlier export")
    with pytest.raises(FileExistsError, match="already exists and is not empty.*overwrite=True"):
        export_hub_folder(model, processor, out)
    assert (out / "stale.txt").exists()
    export_hub_folder(model, processor, out, overwrite=True)
    assert not (out / "stale.txt").exists() and (out / "config.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_interrupted_export_leaves_nothing_behind(tiny_model_and_processor, tmp_path, monkeypatch):
    model, processor = tiny_model_and_processor

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # e.g. Ctrl-C after the weights were written

    monkeypatch.setattr(hub_export, "write_model_card", crash)
    with pytest.raises(KeyboardInterrupt):
        export_hub_folder(model, processor, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_overwrite_keeps_the_previous_folder(tiny_model_and_processor, tmp_path, monkeypatch):
    model, processor = tiny_model_and_processor
    out = export_hub_folder(model, processor, tmp_path / "out")
    before = sorted(p.name for p in out.iterdir())
    monkeypatch.setattr(hub_export, "write_model_card", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        export_hub_folder(model, processor, out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def saved_tensors(folder) -> dict[str, torch.Tensor]:
    tensors = {}
    for shard in folder.glob("*.safetensors"):
        with safe_open(shard, framework="pt") as f:
            tensors.update({key: f.get_tensor(key) for key in f.keys()})
    return tensors


def test_export_command(hub_folder, tmp_path, capsys):
    out = tmp_path / "exported"
    assert main(["export", str(hub_folder), str(out), "--dtype", "bfloat16", "--model-id", "org/storm-tiny"]) == 0
    assert "Exported StormForConditionalGeneration" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    # the weights themselves are bfloat16: every tensor of the source, rounded
    source, exported = saved_tensors(hub_folder), saved_tensors(out)
    assert exported.keys() == source.keys()
    for name, tensor in source.items():
        assert exported[name].dtype == torch.bfloat16, name
        assert torch.equal(exported[name], tensor.to(torch.bfloat16)), name
    assert '"org/storm-tiny"' in (out / "README.md").read_text()
    assert main(["export", str(hub_folder), str(out)]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert main(["export", str(hub_folder), str(out), "--overwrite"]) == 0


def test_a_folder_for_the_installed_package_only_has_no_code(tiny_model_and_processor, tmp_path):
    model, processor = tiny_model_and_processor
    out = export_hub_folder(model, processor, tmp_path / "out", include_code=False)
    assert not list(out.glob("*.py"))
    assert "auto_map" not in json.loads((out / "config.json").read_text())
    assert "auto_map" not in (out / "processor_config.json").read_text()
    assert "auto_map" not in model.config.to_dict()  # the caller's config is left as it was
