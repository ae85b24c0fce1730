"""Configuration classes for STORM: the Mamba temporal encoder and the full video LLM.

Hub code: imports only the standard library and transformers' public API.
"""

import math

from transformers import AutoConfig, PreTrainedConfig

# implementations of the Mamba blocks' scan and convolution (kernel_choice.py)
MAMBA_KERNELS = ("auto", "mamba_ssm", "triton", "torch")
# Which temporal slot of each group of `temporal_sampling_stride` slots test-time sampling keeps.
TEMPORAL_SAMPLING_SLOTS = ("first", "last")


def _require_positive_int(config_name: str, **values) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{config_name}.{name} must be a positive integer, got {value!r}.")


class StormTemporalConfig(PreTrainedConfig):
    r"""
    Configuration of [`StormTemporalEncoder`]: space-to-channel downsampling, a linear projection to the LLM width,
    residual bidirectional Mamba blocks over the whole clip, then temporal and spatial average pooling and test-time
    temporal sampling.

    Args:
        vision_hidden_size (`int`, defaults to 1152): channels of the vision tower's patch features.
        downsample (`int`, defaults to 2): side of the space-to-channel window (2 turns 32x32xC into 16x16x4C).
        hidden_size (`int`, defaults to 3584): width of the encoder, equal to the LLM's hidden size.
        num_layers (`int`, defaults to 2): number of residual Mamba blocks (0 = linear projector only).
        d_state (`int`, defaults to 16): SSM state size per channel.
        d_conv (`int`, defaults to 4): width of the causal depthwise convolution.
        expand (`int`, defaults to 2): inner width of the mixer is `expand * hidden_size`.
        dt_rank (`int` or `"auto"`, defaults to `"auto"`): rank of the time-step projection; "auto" is
            `ceil(hidden_size / 16)`.
        bidirectional (`bool`, defaults to `True`): add a scan over the reversed sequence; `False` gives a causal,
            streamable encoder.
        temporal_pool_size (`int`, defaults to 4): frames averaged into one temporal slot (k). Videos must have a
            multiple of k frames.
        spatial_pool_size (`int`, defaults to 1): side of the average-pooling window over the downsampled grid
            (1 = off, 2 = 4x fewer tokens per slot).
        temporal_sampling_stride (`int`, defaults to 1): keep every s-th temporal slot at test time; callers may
            override it per call.
        temporal_sampling_slot (`str`, defaults to `"first"`): which slot of each group of s sampling keeps:
            `"first"` (slots 0, s, 2s, ...) or `"last"` (slots s-1, 2s-1, ..., and the last slot of an incomplete
            final group). A forward-only encoder should keep `"last"`: that slot has seen the group's dropped slots,
            and it is the one a stream has when the group completes. Callers may override it per call.
        scan_chunk_size (`int`, defaults to 512): tokens each Mamba block processes at a time when it runs on the
            CPU without gradients, bounding its working memory; the output is the same for any value. With
            gradients, and on CUDA (mamba_ssm's kernel scans whole sequences), a block runs over the whole clip.
        mamba_kernel (`str`, defaults to `"auto"`): what runs the Mamba blocks' selective scan and convolution:
            `"mamba_ssm"` (the mamba-ssm / causal-conv1d CUDA kernels), `"triton"` (storm_hf's Triton kernels),
            `"torch"` (pure PyTorch) or `"auto"` (pure PyTorch on CPU; on CUDA mamba_ssm, else Triton, else
            PyTorch). The environment variable `STORM_MAMBA_KERNEL` overrides it. An explicit choice that cannot run
            raises an error; see docs/kernels.md.
    """

    model_type = "storm_temporal"
    base_config_key = "temporal_config"

    vision_hidden_size: int = 1152
    downsample: int = 2
    hidden_size: int = 3584
    num_layers: int = 2
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: int | str = "auto"
    bidirectional: bool = True
    temporal_pool_size: int = 4
    spatial_pool_size: int = 1
    temporal_sampling_stride: int = 1
    temporal_sampling_slot: str = "first"
    scan_chunk_size: int = 512
    mamba_kernel: str = "auto"
    layer_norm_eps: float = 1e-5
    use_bias: bool = False
    use_conv_bias: bool = True
    time_step_min: float = 0.001
    time_step_max: float = 0.1
    time_step_floor: float = 1e-4
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        _require_positive_int(
            type(self).__name__,
            vision_hidden_size=self.vision_hidden_size,
            downsample=self.downsample,
            hidden_size=self.hidden_size,
            d_state=self.d_state,
            d_conv=self.d_conv,
            expand=self.expand,
            temporal_pool_size=self.temporal_pool_size,
            spatial_pool_size=self.spatial_pool_size,
            temporal_sampling_stride=self.temporal_sampling_stride,
            scan_chunk_size=self.scan_chunk_size,
        )
        if isinstance(self.num_layers, bool) or not isinstance(self.num_layers, int) or self.num_layers < 0:
            raise ValueError(f"StormTemporalConfig.num_layers must be an integer >= 0, got {self.num_layers!r}.")
        if self.temporal_sampling_slot not in TEMPORAL_SAMPLING_SLOTS:
            raise ValueError(
                f"StormTemporalConfig.temporal_sampling_slot must be one of {TEMPORAL_SAMPLING_SLOTS}, got "
                f"{self.temporal_sampling_slot!r}."
            )
        if self.dt_rank != "auto":
            _require_positive_int(type(self).__name__, dt_rank=self.dt_rank)
        if self.mamba_kernel not in MAMBA_KERNELS:
            raise ValueError(
                f"StormTemporalConfig.mamba_kernel must be one of {', '.join(map(repr, MAMBA_KERNELS))}, got "
                f"{self.mamba_kernel!r}."
            )
        if self.scan_chunk_size < self.d_conv:
            raise ValueError(
                f"StormTemporalConfig.scan_chunk_size ({self.scan_chunk_size}) must be at least d_conv "
                f"({self.d_conv}): each chunk hands its last d_conv - 1 steps to the next one's convolution."
            )

    @property
    def intermediate_size(self) -> int:
        return self.expand * self.hidden_size

    @property
    def time_step_rank(self) -> int:
        return math.ceil(self.hidden_size / 16) if self.dt_rank == "auto" else self.dt_rank


# The paper's 7B model: PaliGemma's SigLIP-So400m/14 at 448 px, the language model of Qwen2-VL-7B.
_PAPER_VISION_CONFIG = {
    "model_type": "siglip_vision_model",
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "patch_size": 14,
    "image_size": 448,
    "vision_use_head": False,
}
_PAPER_TEXT_CONFIG = {
    "model_type": "qwen2",
    "vocab_size": 152064,
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
}


def _pipeline_installed(task: str) -> bool:
    """Whether this process already registered STORM's pipeline for `task` (importing storm-hf does)."""
    from transformers.pipelines import PIPELINE_REGISTRY

    impl = PIPELINE_REGISTRY.supported_tasks.get(task, {}).get("impl")
    return getattr(impl, "__name__", None) == "StormVideoTextToTextPipeline"


def _as_config(value, default: dict) -> PreTrainedConfig:
    if isinstance(value, PreTrainedConfig):
        return value
    values = dict(default if value is None else value)
    model_type = values.pop("model_type", default["model_type"])
    return AutoConfig.for_model(model_type, **values)


class StormConfig(PreTrainedConfig):
    r"""
    Configuration of [`StormModel`] / [`StormForConditionalGeneration`]. `StormConfig()` describes the paper's 7B
    model (SigLIP-So400m/14 at 448 px, a Qwen2-7B language model, temporal pooling k=4).

    Args:
        vision_config (`dict` or `PreTrainedConfig`): the vision tower (SigLIP vision by default,
            `vision_use_head=False`).
        text_config (`dict` or `PreTrainedConfig`): any causal LM config (Qwen2 by default).
        temporal_config (`dict` or [`StormTemporalConfig`]): the temporal encoder. `vision_hidden_size` and
            `hidden_size` are filled from the vision and text configs when absent.
        vision_feature_layer (`int`, defaults to -2): hidden state of the vision tower that feeds the encoder.
        video_token_id (`int`), image_token_id (`int`): placeholder tokens filled with visual features.
        vision_chunk_size (`int`, defaults to 32): frames the vision tower encodes at once, bounding its
            activation memory independently of the clip length.
    """

    model_type = "storm"
    sub_configs = {"vision_config": AutoConfig, "text_config": AutoConfig, "temporal_config": StormTemporalConfig}

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    temporal_config: dict | StormTemporalConfig | None = None
    vision_feature_layer: int = -2
    video_token_id: int = 151656
    image_token_id: int = 151655
    vision_chunk_size: int = 32
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        self.vision_config = _as_config(self.vision_config, _PAPER_VISION_CONFIG)
        self.text_config = _as_config(self.text_config, _PAPER_TEXT_CONFIG)
        if not isinstance(self.temporal_config, StormTemporalConfig):
            temporal = dict(self.temporal_config or {})
            temporal.pop("model_type", None)
            temporal.setdefault("vision_hidden_size", self.vision_config.hidden_size)
            temporal.setdefault("hidden_size", self.text_config.hidden_size)
            self.temporal_config = StormTemporalConfig(**temporal)
        # A language model with tied input/output embeddings keeps them tied inside STORM.
        self.tie_word_embeddings = self.tie_word_embeddings or bool(getattr(self.text_config, "tie_word_embeddings", False))
        # An exported folder names its pipeline module for remote code. When this config is the installed storm-hf
        # class (not loaded as remote code), the registered pipeline serves the task instead, so that
        # `pipeline(task, model=folder)` needs no `trust_remote_code`.
        # The folder's entry is kept aside and written back by `to_dict`, so that saving the loaded model again keeps
        # the folder working for people without storm-hf.
        custom_pipelines = kwargs.get("custom_pipelines") or {}
        loaded_as_remote_code = type(self).__module__.startswith("transformers_modules")
        if custom_pipelines and not loaded_as_remote_code and all(map(_pipeline_installed, custom_pipelines)):
            self._served_custom_pipelines = kwargs.pop("custom_pipelines")
        super().__post_init__(**kwargs)
        self._check_consistency()

    def to_dict(self) -> dict:
        output = super().to_dict()
        served = output.pop("_served_custom_pipelines", None)
        if served and "custom_pipelines" not in output:
            output["custom_pipelines"] = served
        return output

    def _check_consistency(self) -> None:
        temporal = self.temporal_config
        if temporal.vision_hidden_size != self.vision_config.hidden_size:
            raise ValueError(
                f"temporal_config.vision_hidden_size ({temporal.vision_hidden_size}) must equal "
                f"vision_config.hidden_size ({self.vision_config.hidden_size})."
            )
        if temporal.hidden_size != self.text_config.hidden_size:
            raise ValueError(
                f"temporal_config.hidden_size ({temporal.hidden_size}) must equal the language model's "
                f"text_config.hidden_size ({self.text_config.hidden_size})."
            )
        _require_positive_int(type(self).__name__, vision_chunk_size=self.vision_chunk_size)
        if self.video_token_id == self.image_token_id:
            raise ValueError(f"video_token_id and image_token_id must differ, both are {self.video_token_id}.")

    @property
    def vision_grid_size(self) -> int:
        """Patches per side of one frame in the vision tower (448 / 14 = 32 for the paper's SigLIP)."""
        return self.vision_config.image_size // self.vision_config.patch_size


__all__ = ["StormConfig", "StormTemporalConfig"]
