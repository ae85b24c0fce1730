"""`storm-hf convert`: tiny research checkpoints in the guessed VILA layout -> STORM Hub folders, with parity."""

import json
import re

import pytest
import torch
from research_fixtures import STORM_KEYS, VISION, build_research_checkpoint, research_projector_tensors
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer

from storm_hf.cli import main
from storm_hf.conversion import verify
from storm_hf.conversion.convert import convert_research_checkpoint
from storm_hf.conversion.research_checkpoint import ConversionError
from storm_hf.modeling.modeling_storm import StormForConditionalGeneration

LICENSE = ["--license", "apache-2.0"]  # the research weights' license: the card never assumes one


def convert(source, out, **kwargs):
    return convert_research_checkpoint(source, out, progress=False, **kwargs)


def saved_dtypes(folder) -> set:
    dtypes = set()
    for shard in folder.glob("*.safetensors"):
        with safe_open(shard, framework="pt") as f:
            dtypes |= {f.get_slice(key).get_dtype() for key in f.keys()}
    return dtypes


@pytest.fixture(scope="module")
def converted(research_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("converted") / "storm"
    return convert(research_checkpoint, out), out


def test_parity_report_is_within_1e_5_for_every_part(converted):
    report, out = converted
    assert report.passed and report.output == out.resolve()
    checks = {check.part: check for check in report.checks}
    assert set(checks) == {"vision tower", "temporal encoder", "language model"}
    assert all(check.max_abs_diff <= 1e-5 for check in checks.values())
    assert checks["temporal encoder"].max_abs_diff == 0.0
    # the LLM has 2 decoder layers of 12 tensors + embeddings, final norm, untied lm_head
    assert checks["language model"].tensors == 2 * 12 + 3
    assert report.dropped == {"vision_tower": 11}  # SigLIP's pooling head
    assert "generation: greedy" in report.format() and report.generation_error is None


def test_every_tensor_lands_where_the_table_says(converted, research_checkpoint):
    _, out = converted
    model = StormForConditionalGeneration.from_pretrained(out)
    projector = load_file(research_checkpoint / "mm_projector" / "model.safetensors")
    assert torch.equal(model.model.temporal_encoder.projector.weight, projector["layers.1.weight"])
    assert torch.equal(model.model.temporal_encoder.layers[1].mixer.A_b_log, projector["mamba.layers.1.mixer.A_b_log"])
    assert torch.equal(model.model.temporal_encoder.layers[0].norm.bias, projector["mamba.layers.0.norm.bias"])
    vision = load_file(research_checkpoint / "vision_tower" / "model.safetensors")
    fc1 = model.model.vision_tower.encoder.layers[2].mlp.fc1.weight
    assert torch.equal(fc1, vision["encoder.layers.2.mlp.fc1.weight"])
    assert not hasattr(model.model.vision_tower, "head")


def test_config_comes_from_the_research_config_and_the_parts(converted):
    _, out = converted
    config = json.loads((out / "config.json").read_text())
    temporal = config["temporal_config"]
    assert temporal["temporal_pool_size"] == STORM_KEYS["mm_temporal_pool_size"]
    assert temporal["d_state"] == STORM_KEYS["mamba_d_state"] and temporal["num_layers"] == 2
    assert temporal["vision_hidden_size"] == VISION["hidden_size"] and temporal["hidden_size"] == 64
    assert config["vision_feature_layer"] == -2 and config["vision_config"]["vision_use_head"] is False
    processor = json.loads((out / "processor_config.json").read_text())["video_processor"]
    assert processor["max_frames"] == STORM_KEYS["num_video_frames"] and processor["temporal_pool_size"] == 2
    assert processor["size"] == {"height": 32, "width": 32} and processor["patch_size"] == 8
    assert (out / "README.md").is_file() and (out / "modeling_storm.py").is_file()


def test_missing_placeholders_are_added_with_embeddings_from_the_existing_statistics(converted, research_checkpoint):
    report, out = converted
    assert report.added_tokens == ["<|video_pad|>", "<|image_pad|>"] and report.added_rows == 2
    tokenizer = AutoTokenizer.from_pretrained(out)
    config = json.loads((out / "config.json").read_text())
    assert config["video_token_id"] == tokenizer.convert_tokens_to_ids("<|video_pad|>") == len(tokenizer) - 2
    assert config["image_token_id"] == tokenizer.convert_tokens_to_ids("<|image_pad|>") == len(tokenizer) - 1
    model = StormForConditionalGeneration.from_pretrained(out)
    for matrix in (model.get_input_embeddings().weight, model.lm_head.weight):
        old, new = matrix[:-2], matrix[-2:]
        assert matrix.shape[0] == len(tokenizer) == config["text_config"]["vocab_size"]
        # at the mean of the existing rows: not zero, not noise of another scale
        assert torch.allclose(new, old.mean(0).expand_as(new), atol=1e-3 * old.std().item())
        assert new.norm(dim=1).min() > 0


def test_a_tokenizer_that_has_the_placeholders_keeps_its_ids_and_size(tmp_path):
    source = build_research_checkpoint(tmp_path / "ckpt", placeholders=True)
    report = convert(source, tmp_path / "out")
    tokenizer = AutoTokenizer.from_pretrained(source / "llm")
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert report.added_tokens == [] and report.added_rows == 0
    assert config["video_token_id"] == tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert config["text_config"]["vocab_size"] == len(tokenizer)


def test_tied_embeddings_stay_tied(tmp_path):
    source = build_research_checkpoint(tmp_path / "ckpt", tie=True)
    report = convert(source, tmp_path / "out")
    assert report.passed
    model = StormForConditionalGeneration.from_pretrained(tmp_path / "out")
    assert model.config.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_a_single_state_dict_file_converts_like_the_folders(tmp_path, suffix, converted):
    source = build_research_checkpoint(tmp_path / "ckpt", single_file=suffix, tie=True)
    report = convert(source, tmp_path / "out")
    assert report.passed and all(check.max_abs_diff <= 1e-5 for check in report.checks)
    assert report.copied == {"vision_tower": 53, "mm_projector": 38, "llm": 26}  # tied: no lm_head
    model = StormForConditionalGeneration.from_pretrained(tmp_path / "out")
    projector = research_projector_tensors(STORM_KEYS)
    x_proj_b = model.model.temporal_encoder.layers[0].mixer.x_proj_b.weight
    assert torch.equal(x_proj_b, projector["mamba.layers.0.mixer.x_proj_b.weight"])


def test_bfloat16_output(tmp_path, research_checkpoint):
    report = convert(research_checkpoint, tmp_path / "out", dtype="bfloat16")
    assert report.passed and report.dtype == torch.bfloat16
    assert saved_dtypes(tmp_path / "out") == {"BF16"}
    assert json.loads((tmp_path / "out" / "config.json").read_text())["dtype"] == "bfloat16"
    assert {check.part: check.max_abs_diff for check in report.checks}["temporal encoder"] == 0.0  # bit-equal once cast


def test_the_dtype_is_kept_and_mixed_dtypes_need_a_choice(tmp_path):
    source = build_research_checkpoint(tmp_path / "ckpt", dtype=torch.bfloat16)
    assert convert(source, tmp_path / "out", verify=False).dtype == torch.bfloat16
    assert saved_dtypes(tmp_path / "out") == {"BF16"}
    projector = source / "mm_projector" / "model.safetensors"
    save_file({name: tensor.float() for name, tensor in load_file(projector).items()}, projector)
    message = r"do not share one dtype \(bfloat16: \d+ tensors, float32: 38 tensors\).*--dtype"
    with pytest.raises(ConversionError, match=message):
        convert(source, tmp_path / "out2")


def test_research_keys_set_the_pooling_and_absent_ones_are_reported(tmp_path):
    source = build_research_checkpoint(
        tmp_path / "ckpt", keys={"mm_spatial_pool_size": 2, "mm_temporal_pool_size": 4, "mamba_bidirectional": False}
    )
    report = convert(source, tmp_path / "out")
    temporal = json.loads((tmp_path / "out" / "config.json").read_text())["temporal_config"]
    assert (temporal["spatial_pool_size"], temporal["temporal_pool_size"], temporal["bidirectional"]) == (2, 4, False)
    assert report.copied["mm_projector"] == 2 + 2 * (2 + 9)  # unidirectional: no backward-branch tensors
    assert "mamba_d_conv" in report.defaults and "mm_temporal_pool_size" not in report.defaults
    assert "4-frame video (1 video tokens)" in report.generation


def test_no_verify_skips_the_checks_and_writes(tmp_path, research_checkpoint, capsys):
    assert main(["convert", str(research_checkpoint), str(tmp_path / "out"), "--no-verify", *LICENSE]) == 0
    printed = capsys.readouterr().out
    assert "not checked (--no-verify)" in printed and "max |diff|" not in printed
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_the_cli_prints_the_parity_report(tmp_path, research_checkpoint, capsys):
    assert main(["convert", str(research_checkpoint), str(tmp_path / "out"), *LICENSE]) == 0
    printed = capsys.readouterr().out
    for line in ("vision tower", "features at layer -2 vs SiglipVisionModel", "text-only logits vs Qwen2ForCausalLM",
                 "tensors bit-equal to the source", "generation: greedy"):
        assert line in printed


def test_a_failed_check_exits_non_zero_and_writes_nothing(tmp_path, research_checkpoint, capsys, monkeypatch):
    monkeypatch.setitem(verify.TOLERANCES, torch.float32, -1.0)  # no difference, not even 0, is small enough
    assert main(["convert", str(research_checkpoint), str(tmp_path / "out"), *LICENSE]) == 1
    assert "FAILED" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []


def test_an_existing_output_folder_is_refused(tmp_path, research_checkpoint, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    assert main(["convert", str(research_checkpoint), str(tmp_path / "out"), "--no-verify", *LICENSE]) == 1
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


class _NotATensor:
    pass


def _edit_projector(source, edit):
    path = source / "mm_projector" / "model.safetensors"
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path)


def _pickle_projector(source):
    (source / "mm_projector" / "model.safetensors").unlink()
    torch.save({"layers.1.weight": torch.zeros(2), "extra": _NotATensor()}, source / "mm_projector" / "model.pt")


def _state_dict_with_a_number(source):
    tensors = load_file(source / "mm_projector" / "model.safetensors")
    (source / "mm_projector" / "model.safetensors").unlink()
    torch.save({"state_dict": tensors, "epoch": 3}, source / "mm_projector" / "model.bin")


BAD_CHECKPOINTS = {
    "missing tensor": (
        lambda s: _edit_projector(s, lambda t: t.pop("mamba.layers.1.mixer.D_b")),
        r"missing \(no source tensor fills them\): 1\n    model\.temporal_encoder\.layers\.1\.mixer\.D_b",
    ),
    "extra tensor": (
        lambda s: _edit_projector(s, lambda t: t.update({"mamba.layers.0.mixer.gate": torch.zeros(3)})),
        r"unexpected \(no model tensor for them\): 1\n    mm_projector: mamba\.layers\.0\.mixer\.gate",
    ),
    "wrong shape": (
        lambda s: _edit_projector(s, lambda t: t.update({"layers.1.bias": torch.zeros(65)})),
        r"wrong shape: 1\n    mm_projector: layers\.1\.bias is \[65\], "
        r"model\.temporal_encoder\.projector\.bias needs \[64\]",
    ),
    "missing sub-folder": (
        lambda s: __import__("shutil").rmtree(s / "mm_projector"),
        r"has vision_tower/, llm/ but not mm_projector/: a research checkpoint folder needs all of",
    ),
    "pickle with a non-tensor object": (
        _pickle_projector,
        r"model\.pt holds pickled objects other than tensors.*_NotATensor.*safetensors",
    ),
    "state dict with a non-tensor entry": (
        _state_dict_with_a_number,
        r"model\.bin holds entries that are not tensors: epoch \(int\)",
    ),
}


@pytest.mark.parametrize("problem", BAD_CHECKPOINTS)
def test_a_bad_checkpoint_fails_naming_the_problem_and_leaves_no_output(tmp_path, problem, capsys):
    break_it, message = BAD_CHECKPOINTS[problem]
    source = build_research_checkpoint(tmp_path / "ckpt")
    break_it(source)
    out = tmp_path / "out"
    assert main(["convert", str(source), str(out), *LICENSE]) == 1
    error = capsys.readouterr().err
    assert re.search(message, error, re.DOTALL), error
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
