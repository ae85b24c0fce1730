"""Where a STORM research checkpoint keeps its configs and tensors: every name the converter relies on.

No STORM checkpoint is public. STORM was trained in NVIDIA's VILA codebase, so this table encodes VILA's layout
(STORM_SPEC section 5) plus our guess of STORM's own names. When the real format appears, adapting the converter
is an edit of this module only.

Folder layout::

    <ckpt>/config.json       model_type "llava": mm_vision_select_layer, mm_vision_select_feature, num_video_frames,
                             llm_cfg / vision_tower_cfg / mm_projector_cfg, ... + the STORM keys below
    <ckpt>/llm/              a Hugging Face causal-LM folder with the tokenizer
    <ckpt>/vision_tower/     a SiglipVisionModel folder
    <ckpt>/mm_projector/     config.json + safetensors: the linear layer and the Mamba blocks

Single-file layout: `<ckpt>/config.json` + one state dict (`*.safetensors`, possibly sharded with an index, or
`*.pt` / `*.pth` / `*.bin`) of VILA's whole model, whose modules are `llm`, `vision_tower` (a wrapper around the
SigLIP model, hence `vision_tower.vision_tower.`) and `mm_projector`. The part configs are then the `*_cfg` dicts of
config.json, and the tokenizer comes from the checkpoint folder or `--tokenizer`.
"""

from dataclasses import dataclass

TOP_CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class Part:
    name: str  # sub-folder in the folder layout
    prefix: str  # prefix of the part's tensors in a single state-dict file
    config_key: str  # key of the part's config dict in the top config.json (single-file layout)
    description: str  # how the conversion report names it


VISION = Part("vision_tower", "vision_tower.vision_tower.", "vision_tower_cfg", "vision tower")
PROJECTOR = Part("mm_projector", "mm_projector.", "mm_projector_cfg", "temporal encoder")
LLM = Part("llm", "llm.", "llm_cfg", "language model")
PARTS = (VISION, PROJECTOR, LLM)

# Source tensor -> STORM tensor, per part: (part, regex on the part's own key, replacement or None = dropped on
# purpose). A key must match a pattern entirely; the first matching rule wins.
_MIXER_TENSORS = (
    r"(?:in_proj|out_proj|conv1d|conv1d_b|x_proj|x_proj_b|dt_proj|dt_proj_b)\.(?:weight|bias)|A_log|A_b_log|D|D_b"
)
TENSOR_RULES = (
    # A SiglipVisionModel saved by transformers 5.x has flat keys, by 4.x `vision_model.`-prefixed ones.
    (VISION, r"(?:vision_model\.)?(embeddings|encoder|post_layernorm)\.(.+)", r"model.vision_tower.\1.\2"),
    # SigLIP's attention-pooling head: STORM reads a hidden layer, never the pooled output.
    (VISION, r"(?:vision_model\.)?head\..+", None),
    # VILA's projector is `layers = nn.Sequential(DownSampleBlock(), ...)`; STORM's guess: (DownSampleBlock(), Linear).
    (PROJECTOR, r"layers\.1\.(weight|bias)", r"model.temporal_encoder.projector.\1"),
    # The Mamba blocks (Vision Mamba's bidirectional naming, which StormMambaMixer shares).
    (PROJECTOR, r"mamba\.layers\.(\d+)\.norm\.(weight|bias)", r"model.temporal_encoder.layers.\1.norm.\2"),
    (PROJECTOR, rf"mamba\.layers\.(\d+)\.mixer\.({_MIXER_TENSORS})", r"model.temporal_encoder.layers.\1.mixer.\2"),
    # A causal-LM folder: the base model under `model.`, the output layer `lm_head` (absent when embeddings are tied).
    (LLM, r"model\.(.+)", r"model.language_model.\1"),
    (LLM, r"lm_head\.weight", "lm_head.weight"),
)

# StormConfig fields read from the research config: field -> (research key, default when the key is absent).
# Keys are looked up in the top config.json, then in the projector's config (mm_projector/config.json or the
# `mm_projector_cfg` dict).
STORM_CONFIG_KEYS = {
    "vision_feature_layer": ("mm_vision_select_layer", -2),
}
TEMPORAL_CONFIG_KEYS = {
    "downsample": ("mm_downsample_rate", 2),
    "num_layers": ("mamba_num_layers", 2),
    "d_state": ("mamba_d_state", 16),
    "d_conv": ("mamba_d_conv", 4),
    "expand": ("mamba_expand", 2),
    "dt_rank": ("mamba_dt_rank", "auto"),
    "bidirectional": ("mamba_bidirectional", True),
    "layer_norm_eps": ("mamba_norm_eps", 1e-5),
    "use_bias": ("mamba_proj_bias", False),
    "use_conv_bias": ("mamba_conv_bias", True),
    "temporal_pool_size": ("mm_temporal_pool_size", 4),
    "spatial_pool_size": ("mm_spatial_pool_size", 1),
    "temporal_sampling_stride": ("mm_temporal_sampling_stride", 1),
}
# Frames per video the checkpoint was trained with (VILA's key): the processor's `max_frames`, i.e. the frames a
# video gets when the caller names no count. Absent: the processor's default.
NUM_FRAMES_KEY = "num_video_frames"

# VILA's vision feature selection. SigLIP has no class token, so both values mean every patch token, which is
# what STORM feeds forward.
SELECT_FEATURE_KEY = "mm_vision_select_feature"
SUPPORTED_SELECT_FEATURES = ("patch", "cls_patch")

# Weight files, in order of preference: an index naming shards, safetensors, then pickled state dicts (read with
# torch.load(weights_only=True) only). A pickled file may wrap its state dict under one of these keys.
INDEX_SUFFIX = ".index.json"
SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".pt", ".pth", ".bin")
STATE_DICT_WRAPPER_KEYS = ("state_dict", "model", "module")
