"""Model scales (vision tower and LLM shapes, dtype) and the token-reduction settings the benchmarks compare.

Models are built from configs with random weights: latency and memory do not depend on the weights.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..modeling.configuration_storm import StormConfig


@dataclass(frozen=True)
class Scale:
    """A vision tower + LLM shape. `vision` / `text` None means StormConfig's default: the paper's model."""

    description: str
    vision: dict | None = None
    text: dict | None = None
    dtype: str = "bfloat16"
    video_token_id: int = StormConfig.video_token_id
    image_token_id: int = StormConfig.image_token_id


# Qwen2-0.5B's language model.
_QWEN2_05B = {
    "model_type": "qwen2",
    "vocab_size": 151936,
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
}

SCALES = {
    "paper": Scale("SigLIP-So400m/14 at 448 px + Qwen2-7B-shaped LLM, bf16: the paper's 7B model (for a GPU)"),
    "cpu": Scale(
        "SigLIP-style tower (12 layers, hidden 384) at 224 px + Qwen2-0.5B-shaped LLM, bf16: "
        "the whole table fits a 2-core CPU",
        vision={
            "model_type": "siglip_vision_model",
            "hidden_size": 384,
            "intermediate_size": 1536,
            "num_hidden_layers": 12,
            "num_attention_heads": 6,
            "image_size": 224,
            "patch_size": 14,
            "vision_use_head": False,
        },
        text=_QWEN2_05B,
    ),
    "tiny": Scale(
        "32 px frames, 64-wide LLM, fp32: a run of seconds, for tests",
        vision={
            "model_type": "siglip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
            "vision_use_head": False,
        },
        text={
            "model_type": "qwen2",
            "vocab_size": 512,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
        },
        dtype="float32",
        video_token_id=500,
        image_token_id=501,
    ),
}


@dataclass(frozen=True)
class Setting:
    """One way of feeding video to the LLM: with or without the Mamba encoder, and how tokens are reduced."""

    name: str
    label: str
    mamba: bool
    temporal_pool_size: int = 1
    spatial_pool_size: int = 1
    temporal_sampling_stride: int = 1

    def as_dict(self) -> dict:
        return asdict(self)


SETTINGS = {
    setting.name: setting
    for setting in (
        Setting("baseline", "no Mamba, linear projector (VILA-like)", mamba=False),
        Setting("storm", "STORM, no reduction", mamba=True),
        Setting("k4", "STORM + temporal pooling k=4", mamba=True, temporal_pool_size=4),
        Setting("k4-s2", "STORM + k=4 + sampling s=2", mamba=True, temporal_pool_size=4, temporal_sampling_stride=2),
        Setting("k4-spatial4", "STORM + k=4 + spatial 4x", mamba=True, temporal_pool_size=4, spatial_pool_size=2),
    )
}


def build_config(scale: Scale, setting: Setting, vision: dict | None = None, text: dict | None = None) -> StormConfig:
    """The StormConfig of `setting` at `scale`; `vision` / `text` replace the scale's sub-configs."""
    temporal = {"temporal_pool_size": setting.temporal_pool_size, "spatial_pool_size": setting.spatial_pool_size}
    if not setting.mamba:
        temporal["num_layers"] = 0
    return StormConfig(
        vision_config=vision if vision is not None else scale.vision,
        text_config=text if text is not None else scale.text,
        temporal_config=temporal,
        video_token_id=scale.video_token_id,
        image_token_id=scale.image_token_id,
    )


def load_sub_config(value: str, key: str) -> dict:
    """`--vision-config` / `--text-config`: a JSON file or inline JSON. A full model config (SigLIP's, Qwen2-VL's)
    is accepted too: its `key` ("vision_config" / "text_config") entry is used."""
    text = Path(value).read_text() if not value.lstrip().startswith("{") else value
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{value!r} is neither a JSON file nor inline JSON: {error}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{value!r} must hold a JSON object (a config), got {type(config).__name__}.")
    return config.get(key, config)


def shape_summary(config: StormConfig) -> dict:
    """The sizes that set the cost: vision tower, temporal encoder and LLM shapes."""
    vision, text, temporal = config.vision_config, config.text_config, config.temporal_config
    return {
        "vision": {
            name: getattr(vision, name)
            for name in ("image_size", "patch_size", "hidden_size", "intermediate_size", "num_hidden_layers")
        },
        "temporal": {name: getattr(temporal, name) for name in ("num_layers", "d_state", "expand", "bidirectional")},
        "text": {
            name: getattr(text, name)
            for name in (
                "hidden_size",
                "intermediate_size",
                "num_hidden_layers",
                "num_attention_heads",
                "num_key_value_heads",
                "vocab_size",
            )
        },
        "vision_feature_layer": config.vision_feature_layer,
        "vision_chunk_size": config.vision_chunk_size,
    }
