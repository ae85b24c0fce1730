"""Tiny research checkpoints in STORM's guessed VILA layout, built by hand (not through the converter's table)."""

import json

import torch
from safetensors.torch import save_file
from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer, SiglipVisionConfig, SiglipVisionModel

from storm_hf.modeling.configuration_storm import StormTemporalConfig
from storm_hf.modeling.modeling_storm import StormTemporalEncoder
from storm_hf.tokenization import SPECIAL_TOKENS, build_tokenizer

TEXTS = ["a red square moves to the left", "what happens in the video?", "hello world, the ball bounces"] * 20
VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 3,
    "num_attention_heads": 2,
    "image_size": 32,
    "patch_size": 8,
    "vision_use_head": True,  # as VILA saves it: the pooling head is in the checkpoint, unused by STORM
}
TEXT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
}
# The research config's STORM keys (our guess of their names, see research_layout.py).
STORM_KEYS = {
    "mm_vision_select_layer": -2,
    "mm_vision_select_feature": "cls_patch",
    "num_video_frames": 8,
    "mm_temporal_pool_size": 2,
    "mm_spatial_pool_size": 1,
    "mamba_num_layers": 2,
    "mamba_d_state": 8,
    "mamba_bidirectional": True,
}


def tiny_tokenizer(placeholders: bool):
    """A small Qwen2 tokenizer; without the placeholders unless asked (as a plain LLM's tokenizer is)."""
    full = build_tokenizer(TEXTS, vocab_size=300)
    if placeholders:
        return full
    model = json.loads(full.backend_tokenizer.to_str())["model"]
    vocab = {token: i for token, i in model["vocab"].items() if token not in full.added_tokens_encoder}
    plain = Qwen2Tokenizer(
        vocab=vocab,
        merges=[tuple(merge) for merge in model["merges"]],
        extra_special_tokens={key: value for key, value in SPECIAL_TOKENS.items() if key.startswith("im_")},
    )
    plain.chat_template = full.chat_template
    return plain


def _randomised(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter drawn at random, so that a tensor copied to the wrong place cannot go unnoticed."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return module


def research_projector_tensors(keys: dict) -> dict[str, torch.Tensor]:
    """The projector + Mamba tensors under their research names: `layers.1.*` and `mamba.layers.{i}.*`."""
    temporal = StormTemporalConfig(
        vision_hidden_size=VISION["hidden_size"],
        hidden_size=TEXT["hidden_size"],
        num_layers=keys["mamba_num_layers"],
        d_state=keys["mamba_d_state"],
        bidirectional=keys["mamba_bidirectional"],
    )
    encoder = _randomised(StormTemporalEncoder(temporal), seed=3)
    renamed = {}
    for name, tensor in encoder.state_dict().items():
        if name.startswith("projector."):
            renamed["layers.1." + name.removeprefix("projector.")] = tensor
        else:
            renamed["mamba." + name] = tensor
    return renamed


def build_research_checkpoint(
    root,
    *,
    tie: bool = False,
    single_file: str | None = None,
    placeholders: bool = False,
    dtype: torch.dtype = torch.float32,
    keys: dict | None = None,
):
    """Write a research checkpoint to `root`: the folder layout, or with `single_file` (".safetensors", ".pt") one
    state dict of VILA's whole model next to config.json and the tokenizer. Returns `root`."""
    keys = {**STORM_KEYS, **(keys or {})}
    tokenizer = tiny_tokenizer(placeholders)
    vision = _randomised(SiglipVisionModel(SiglipVisionConfig(**VISION)), seed=1).to(dtype)
    llm_config = Qwen2Config(**TEXT, vocab_size=len(tokenizer), tie_word_embeddings=tie)
    llm = _randomised(Qwen2ForCausalLM(llm_config), seed=2).to(dtype)
    projector = {name: tensor.to(dtype) for name, tensor in research_projector_tensors(keys).items()}
    projector_config = {"model_type": "v2l_projector", "mm_projector_type": "storm_mamba"}
    config = {
        "model_type": "llava",
        "architectures": ["LlavaLlamaModel"],
        "hidden_size": TEXT["hidden_size"],
        "mm_hidden_size": VISION["hidden_size"],
        "llm_cfg": {**llm.config.to_dict(), "_name_or_path": "llm"},
        "vision_tower_cfg": {**vision.config.to_dict(), "_name_or_path": "vision_tower"},
        "mm_projector_cfg": {**projector_config, "_name_or_path": "mm_projector"},
        **keys,
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(config, indent=2))
    if single_file is None:
        vision.save_pretrained(root / "vision_tower")
        llm.save_pretrained(root / "llm", max_shard_size="40KB")  # several shards and an index
        tokenizer.save_pretrained(root / "llm")
        (root / "mm_projector").mkdir()
        (root / "mm_projector" / "config.json").write_text(json.dumps(projector_config))
        save_file(projector, root / "mm_projector" / "model.safetensors")
        return root
    state = {f"mm_projector.{name}": tensor for name, tensor in projector.items()}
    # transformers 4.x names, as VILA (built on 4.x) would have saved them
    state.update({f"vision_tower.vision_tower.vision_model.{n}": t for n, t in vision.state_dict().items()})
    llm_state = llm.state_dict()
    if tie:
        del llm_state["lm_head.weight"]
    state.update({f"llm.{name}": tensor for name, tensor in llm_state.items()})
    state = {name: tensor.contiguous() for name, tensor in state.items()}
    if single_file == ".safetensors":
        save_file(state, root / "model.safetensors")
    else:
        torch.save(state, root / f"checkpoint{single_file}")
    tokenizer.save_pretrained(root)
    return root
