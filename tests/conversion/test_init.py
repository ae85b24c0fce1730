"""`storm-hf init`: STORM assembled from a pretrained SigLIP vision model and a pretrained causal LM."""

import json

import pytest
import torch
from research_fixtures import TEXT, VISION
from transformers import AutoTokenizer, Qwen2ForCausalLM, SiglipVisionModel

from storm_hf.cli import main
from storm_hf.modeling.modeling_storm import StormForConditionalGeneration

LICENSE = ["--license", "apache-2.0"]  # the parts' license: the card never assumes one
OPTIONS = [*LICENSE, "--temporal-pool-size", "2", "--spatial-pool-size", "2", "--num-layers", "1", "--no-bidirectional"]


@pytest.fixture(scope="module")
def initialised(parts, tmp_path_factory):
    out = tmp_path_factory.mktemp("init") / "storm"
    vision, llm = parts
    assert main(["init", "--vision", str(vision), "--llm", str(llm), str(out), *OPTIONS]) == 0
    return out


def test_widths_come_from_the_parts_and_pooling_from_the_options(initialised):
    config = json.loads((initialised / "config.json").read_text())
    temporal = config["temporal_config"]
    assert temporal["hidden_size"] == TEXT["hidden_size"] and temporal["vision_hidden_size"] == VISION["hidden_size"]
    assert (temporal["temporal_pool_size"], temporal["spatial_pool_size"]) == (2, 2)
    assert (temporal["num_layers"], temporal["bidirectional"]) == (1, False)
    assert config["vision_feature_layer"] == -2 and config["vision_config"]["vision_use_head"] is False
    tokenizer = AutoTokenizer.from_pretrained(initialised)
    assert config["video_token_id"] == tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert config["image_token_id"] == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert config["text_config"]["vocab_size"] == len(tokenizer)
    assert "<|video_pad|>" in (initialised / "chat_template.jinja").read_text()


def test_pretrained_weights_are_kept_and_the_temporal_encoder_starts_from_mambas_initialisation(initialised, parts):
    model = StormForConditionalGeneration.from_pretrained(initialised)
    vision = SiglipVisionModel.from_pretrained(parts[0])
    llm = Qwen2ForCausalLM.from_pretrained(parts[1])
    for name, tensor in vision.state_dict().items():
        if not name.startswith("head."):
            assert torch.equal(model.model.vision_tower.get_parameter(name), tensor), name
    for name, tensor in llm.model.state_dict().items():
        ours = model.model.language_model.get_parameter(name)
        assert torch.equal(ours[: len(tensor)], tensor), name  # the embeddings gained the placeholder rows
    assert torch.equal(model.lm_head.weight[: llm.lm_head.weight.shape[0]], llm.lm_head.weight)
    mixer = model.model.temporal_encoder.layers[0].mixer
    assert torch.equal(mixer.A_log, torch.log(torch.arange(1.0, 17.0)).expand_as(mixer.A_log))
    assert torch.equal(mixer.D, torch.ones_like(mixer.D))


def test_the_folder_loads_through_auto_model_with_remote_code_and_generates(initialised, python_without_storm_hf):
    """In a process where storm_hf cannot be imported: only the Hub code in the folder can build the model."""
    script = """
        import json, math, sys

        import torch
        from transformers import AutoModel, AutoModelForImageTextToText, AutoTokenizer

        folder = sys.argv[1]
        auto = AutoModel.from_pretrained(folder, trust_remote_code=True)
        model = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
        config, frames = model.config, 4
        side = math.ceil(config.vision_config.image_size / config.vision_config.patch_size / 2 / 2)  # downsample, pool
        video_tokens = frames // config.temporal_config.temporal_pool_size * side * side
        ids = tokenizer("Describe the video:")["input_ids"] + [config.video_token_id] * video_tokens
        input_ids = torch.tensor([ids])
        with torch.no_grad():
            output = model.generate(
                input_ids=input_ids,
                pixel_values_videos=torch.randn(1, frames, 3, 32, 32),
                max_new_tokens=3,
                min_new_tokens=3,
                do_sample=False,
            )
        print(json.dumps({
            "auto": type(auto).__name__,
            "auto_inner": type(auto.model).__name__,
            "model": type(model).__name__,
            "module": type(model).__module__,
            "new_tokens": output.shape[1] - input_ids.shape[1],
            "storm_hf_loaded": any(name.split(".")[0] == "storm_hf" for name in sys.modules),
        }))
        """
    result = python_without_storm_hf(script, initialised)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {
        "auto": "StormForConditionalGeneration",  # AutoModel gives the model that generates
        "auto_inner": "StormModel",
        "model": "StormForConditionalGeneration",
        "module": outcome["module"],
        "new_tokens": 3,
        "storm_hf_loaded": False,
    }
    assert outcome["module"].startswith("transformers_modules.")


def test_bad_options_and_missing_parts_are_reported(parts, tmp_path, capsys):
    vision, llm = parts
    out = tmp_path / "out"
    bad_pool = ["--temporal-pool-size", "0"]
    assert main(["init", "--vision", str(vision), "--llm", str(llm), str(out), *LICENSE, *bad_pool]) == 1
    assert "temporal_pool_size must be a positive integer" in capsys.readouterr().err
    assert main(["init", "--vision", str(tmp_path / "nowhere"), "--llm", str(llm), str(out), *LICENSE]) == 1
    assert "nowhere" in capsys.readouterr().err
    assert not out.exists()
