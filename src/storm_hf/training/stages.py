"""What trains in each stage: freezing, LoRA targets, and optimizer parameter groups with per-part learning rates.

STORM's parts, by module path: `model.vision_tower`, `model.temporal_encoder` (projector + Mamba blocks) and the
language model (`model.language_model` and `lm_head`). Parameter names are classified by path, so the same rules
hold under a PEFT wrapper (`base_model.model.…`) or an FSDP one.
"""

import re

from torch import nn

VISION, TEMPORAL, LANGUAGE = "vision_tower", "temporal_encoder", "language_model"
PARTS = (VISION, TEMPORAL, LANGUAGE)

# "align": the paper's first stage, only the temporal encoder trains (on image-text or video-text pairs);
# "sft": everything trains. LoRA fine-tuning (`apply_lora`) trains adapters only and has its own defaults.
STAGES = ("align", "sft")
DEFAULT_LEARNING_RATES = {
    "align": {TEMPORAL: 1e-3},
    "sft": {VISION: 2e-6, TEMPORAL: 2e-5, LANGUAGE: 2e-5},
    "lora": {VISION: 2e-5, TEMPORAL: 2e-4, LANGUAGE: 2e-4},
}

LANGUAGE_LORA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Not dt_proj / dt_proj_b: the mixer applies their weight directly, their bias in fp32 inside the scan (as mamba_ssm
# does), so an adapter on them would never run; `apply_lora` refuses them.
MAMBA_LORA_MODULES = ("in_proj", "x_proj", "x_proj_b", "out_proj")
_NO_LORA = re.compile(r"(^|.*\.)mixer\.dt_proj(_b)?$")
VISION_LORA_MODULES = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
LORA_DEFAULTS = {"rank": 16, "alpha": 32, "dropout": 0.05}

# The SSM's A and D are never weight-decayed (as in mamba_ssm).
_NO_DECAY = re.compile(r"(^|\.)(A_log|A_b_log|D|D_b)$")


def model_part(name: str) -> str:
    """The part a parameter or module name belongs to; everything outside the vision tower and the temporal encoder
    (the language model, `lm_head`) is the language model."""
    for part in (VISION, TEMPORAL):
        if re.search(rf"(^|\.){part}(\.|$)", name):
            return part
    return LANGUAGE


def count_by_part(names) -> dict[str, int]:
    counts = dict.fromkeys(PARTS, 0)
    for name in names:
        counts[model_part(name)] += 1
    return counts


def freeze_for_stage(model: nn.Module, stage: str) -> None:
    """`align`: only the temporal encoder trains; `sft`: everything the model runs trains.

    The vision tower's layers after `vision_feature_layer`, its post-layernorm and head never run, so they stay frozen
    in every stage (they would get no gradient, which DDP without `find_unused_parameters` refuses).
    """
    if stage not in STAGES:
        raise ValueError(f"Unknown stage {stage!r}: choose one of {', '.join(STAGES)}.")
    layers_run = _storm_model(model)._num_vision_layers
    for name, param in model.named_parameters():
        trains = stage == "sft" or model_part(name) == TEMPORAL
        param.requires_grad_(trains and not _never_runs(name, layers_run))


_VISION_TAIL = re.compile(rf"(^|\.){VISION}\.(post_layernorm|head|encoder\.layers\.(\d+))\.")


def _never_runs(name: str, vision_layers_run: int) -> bool:
    """Whether a parameter belongs to the vision tower's post-layernorm, head, or a layer after the selected one."""
    match = _VISION_TAIL.search(name)
    return bool(match) and (match.group(3) is None or int(match.group(3)) >= vision_layers_run)


def trainable_parameter_summary(model: nn.Module) -> str:
    """e.g. "trainable parameters: vision_tower 0 of 400.0M, temporal_encoder 120.5M of 120.5M, ..." """
    trainable, total = dict.fromkeys(PARTS, 0), dict.fromkeys(PARTS, 0)
    for name, param in model.named_parameters():
        part = model_part(name)
        total[part] += param.numel()
        trainable[part] += param.numel() if param.requires_grad else 0
    return "trainable parameters: " + ", ".join(
        f"{part} {_millions(trainable[part])} of {_millions(total[part])}" for part in PARTS
    )


def _millions(count: int) -> str:
    return f"{count / 1e6:.2f}M" if count else "0"


def lora_target_pattern(model: nn.Module, include_vision: bool = False) -> str:
    """A regex (PEFT matches it against full module paths) for the language model's attention and MLP projections
    and the Mamba projections; with `include_vision`, also the attention and MLP of the vision tower layers the model
    runs (those up to `vision_feature_layer`)."""
    patterns = [
        rf".*{LANGUAGE}\..*\.({'|'.join(LANGUAGE_LORA_MODULES)})",
        rf".*{TEMPORAL}\..*\.({'|'.join(MAMBA_LORA_MODULES)})",
    ]
    if include_vision:
        used_layers = "|".join(str(i) for i in range(_storm_model(model)._num_vision_layers))
        patterns.append(rf".*{VISION}\.encoder\.layers\.({used_layers})\..*\.({'|'.join(VISION_LORA_MODULES)})")
    return "|".join(f"(?:{pattern})" for pattern in patterns)


def _storm_model(model: nn.Module) -> nn.Module:
    """The StormModel inside a StormForConditionalGeneration (or the model itself)."""
    return getattr(model, "model", model)


def lora_targets(model: nn.Module, pattern: str) -> list[str]:
    """The modules `pattern` selects, as PEFT will match them (a full match of the module path)."""
    return [name for name, _ in model.named_modules() if re.fullmatch(pattern, name)]


def apply_lora(
    model: nn.Module,
    *,
    rank: int = LORA_DEFAULTS["rank"],
    alpha: int = LORA_DEFAULTS["alpha"],
    dropout: float = LORA_DEFAULTS["dropout"],
    include_vision: bool = False,
    target_modules: str | None = None,
):
    """Wrap `model` in a PEFT LoRA model; only the adapters train. Returns `(peft_model, targeted module names)`.

    `target_modules` (a regex over module paths) replaces the default targets of `lora_target_pattern`. A pattern
    that selects no module is refused: PEFT would otherwise skip non-matching names silently.
    """
    from peft import LoraConfig, get_peft_model

    pattern = target_modules or lora_target_pattern(model, include_vision)
    targets = lora_targets(model, pattern)
    if not targets:
        raise ValueError(
            f"The LoRA target pattern {pattern!r} matches no module of the model. "
            "Module paths look like 'model.language_model.layers.0.self_attn.q_proj' or "
            "'model.temporal_encoder.layers.0.mixer.in_proj': fix the pattern (it must match the whole path)."
        )
    refused = [name for name in targets if _NO_LORA.match(name)]
    if refused:
        raise ValueError(
            f"The LoRA target pattern {pattern!r} selects {refused[0]!r} ({len(refused)} dt_proj modules in all). "
            "The Mamba mixer applies dt_proj's weight inside its fused scan, so a LoRA adapter there would never "
            "run: leave dt_proj and dt_proj_b out of the pattern (x_proj, in_proj and out_proj take adapters)."
        )
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=pattern, bias="none")
    return get_peft_model(model, config), targets


def parameter_groups(
    model: nn.Module, learning_rates: dict[str, float], weight_decay: float, decay_names
) -> list[dict]:
    """Optimizer groups of the trainable parameters: one per (part, decayed or not), each with its part's learning
    rate. `decay_names` are the parameters that may be weight-decayed (the Trainer's rule: no biases or norms); the
    SSM's A and D never are."""
    decay_names = set(decay_names)
    groups: dict[tuple[str, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = model_part(name)
        if learning_rates.get(part) is None:
            raise ValueError(
                f"Parameter {name} trains but no learning rate is set for the {part} part: give one "
                f"(learning_rates[{part!r}]) or freeze it."
            )
        decay = weight_decay > 0 and name in decay_names and not _NO_DECAY.search(name)
        group = groups.setdefault(
            (part, decay),
            {"params": [], "lr": learning_rates[part], "weight_decay": weight_decay if decay else 0.0, "part": part},
        )
        group["params"].append(param)
    if not groups:
        raise ValueError("No parameter of the model trains: check the stage / LoRA settings.")
    return list(groups.values())


__all__ = [
    "DEFAULT_LEARNING_RATES",
    "LORA_DEFAULTS",
    "PARTS",
    "STAGES",
    "apply_lora",
    "count_by_part",
    "freeze_for_stage",
    "lora_target_pattern",
    "lora_targets",
    "model_part",
    "parameter_groups",
    "trainable_parameter_summary",
]
