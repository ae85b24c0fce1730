"""What trains in each stage: freezing, LoRA targets, per-part learning rates."""

import pytest
import torch

from storm_hf import StormForConditionalGeneration
from storm_hf.training.arguments import StormTrainingArguments
from storm_hf.training.stages import (
    DEFAULT_LEARNING_RATES,
    apply_lora,
    freeze_for_stage,
    model_part,
    parameter_groups,
)

LANGUAGE = [f"self_attn.{n}_proj" for n in "qkvo"] + [f"mlp.{n}_proj" for n in ("gate", "up", "down")]
MAMBA = ["in_proj", "x_proj", "x_proj_b", "out_proj"]
VISION = [f"self_attn.{n}_proj" for n in ("q", "k", "v", "out")] + ["mlp.fc1", "mlp.fc2"]


@pytest.fixture
def tiny_model(tiny_config):
    torch.manual_seed(0)
    return StormForConditionalGeneration(tiny_config())


def expected_targets(vision_layers=()) -> set[str]:
    names = {f"model.language_model.layers.{i}.{name}" for i in range(2) for name in LANGUAGE}
    names |= {f"model.temporal_encoder.layers.{i}.mixer.{name}" for i in range(2) for name in MAMBA}
    names |= {f"model.vision_tower.encoder.layers.{i}.{name}" for i in vision_layers for name in VISION}
    return names


@pytest.mark.parametrize("include_vision", [False, True])
def test_lora_wraps_exactly_the_intended_modules(tiny_model, include_vision):
    # vision_feature_layer=-2 of a 2-layer tower: only layer 0 runs, so only layer 0 gets adapters
    peft_model, targets = apply_lora(tiny_model, include_vision=include_vision)
    expected = expected_targets(vision_layers=[0] if include_vision else [])
    assert set(targets) == expected and len(targets) == len(expected)
    assert set(peft_model.targeted_module_names) == expected
    trainable = {name for name, param in peft_model.named_parameters() if param.requires_grad}
    assert trainable and all(".lora_A." in name or ".lora_B." in name for name in trainable)
    assert {name.split(".lora_")[0].removeprefix("base_model.model.") for name in trainable} == expected


@pytest.mark.parametrize("include_vision", [False, True])
def test_every_lora_adapter_receives_a_gradient(tiny_model, include_vision):
    # An adapter on a module whose weight the model reads directly would never run: no gradient ever reaches it.
    peft_model, targets = apply_lora(tiny_model, include_vision=include_vision)
    for name, param in peft_model.named_parameters():
        if ".lora_B." in name:  # B starts at zero, which would leave A without a gradient in this one step
            torch.nn.init.normal_(param, std=0.1)
    pixels = torch.randn(1, 8, 3, 32, 32)
    num_tokens = tiny_model.get_video_features(pixels).pooler_output[0].shape[0]
    ids = torch.tensor([[1, 2] + [tiny_model.config.video_token_id] * num_tokens + [4, 5]])
    peft_model(input_ids=ids, pixel_values_videos=pixels, labels=ids).loss.backward()
    adapters = {name: param for name, param in peft_model.named_parameters() if ".lora_A." in name}
    assert len(adapters) == len(targets)
    silent = [name for name, param in adapters.items() if param.grad is None or not param.grad.abs().sum() > 0]
    assert not silent, f"adapters that never run: {silent}"


def test_a_lora_pattern_selecting_dt_proj_is_refused(tiny_model):
    with pytest.raises(ValueError, match=r"selects 'model\.temporal_encoder\.layers\.0\.mixer\.dt_proj'.*never run"):
        apply_lora(tiny_model, target_modules=r".*mixer\.(x_proj|dt_proj)")


def test_a_lora_pattern_matching_nothing_is_refused(tiny_model):
    with pytest.raises(ValueError, match=r"matches no module of the model\. Module paths look like"):
        apply_lora(tiny_model, target_modules=r".*qproj")


def test_align_trains_only_the_temporal_encoder_and_sft_everything_that_runs(tiny_model):
    freeze_for_stage(tiny_model, "align")
    trainable = {name for name, param in tiny_model.named_parameters() if param.requires_grad}
    temporal = {name for name, _ in tiny_model.named_parameters() if name.startswith("model.temporal_encoder.")}
    assert trainable == temporal and any(".layers.1.mixer." in name for name in temporal)

    freeze_for_stage(tiny_model, "sft")
    frozen = {name for name, param in tiny_model.named_parameters() if not param.requires_grad}
    # the vision tower's last layer and post-layernorm never run (features come from layer -2)
    never_run = ("model.vision_tower.encoder.layers.1.", "model.vision_tower.post_layernorm.")
    assert frozen and all(name.startswith(never_run) for name in frozen)
    with pytest.raises(ValueError, match="Unknown stage 'pretrain': choose one of align, sft"):
        freeze_for_stage(tiny_model, "pretrain")


def test_parameter_groups_give_each_part_its_learning_rate(tiny_model):
    freeze_for_stage(tiny_model, "sft")
    names = [name for name, _ in tiny_model.named_parameters()]
    groups = parameter_groups(tiny_model, DEFAULT_LEARNING_RATES["sft"], 0.1, decay_names=names)
    by_param = {id(p): g for g in groups for p in g["params"]}
    for name, param in tiny_model.named_parameters():
        if not param.requires_grad:
            assert id(param) not in by_param
            continue
        group = by_param[id(param)]
        assert group["lr"] == DEFAULT_LEARNING_RATES["sft"][model_part(name)], name
        no_decay = name.endswith(("A_log", "A_b_log", ".D", ".D_b"))
        assert group["weight_decay"] == (0.0 if no_decay else 0.1), name
    assert model_part("lm_head.weight") == "language_model"
    assert model_part("base_model.model.model.temporal_encoder.layers.0.mixer.in_proj.lora_A.default.weight") == (
        "temporal_encoder"
    )
    with pytest.raises(ValueError, match=r"no learning rate is set for the vision_tower part"):
        parameter_groups(tiny_model, {"temporal_encoder": 1e-3, "language_model": 1e-5}, 0.0, names)


def test_training_arguments_resolve_learning_rates_and_refuse_bad_combinations(tmp_path):
    def args(**kwargs):
        return StormTrainingArguments(output_dir=str(tmp_path), **kwargs)

    assert args(stage="align").part_learning_rates == {"temporal_encoder": 1e-3}
    assert args(lora=True, temporal_learning_rate=1e-3).part_learning_rates == {
        "vision_tower": 2e-5, "temporal_encoder": 1e-3, "language_model": 2e-4
    }
    assert set(args(learning_rate=3e-5, vision_learning_rate=0.0).part_learning_rates.values()) == {3e-5, 0.0}
    has_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    assert args().lr_scheduler_type == "cosine" and args().bf16 is has_bf16
    with pytest.raises(ValueError, match="LoRA applies to the sft stage"):
        args(stage="align", lora=True)
    with pytest.raises(ValueError, match="either num_frames or fps"):
        args(num_frames=8, fps=2.0)
    with pytest.raises(ValueError, match="remove_unused_columns must stay False"):
        args(remove_unused_columns=True)
