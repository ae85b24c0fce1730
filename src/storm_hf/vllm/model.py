"""STORM as a vLLM model: vLLM's own causal LM (paged attention, tensor and pipeline parallelism), and STORM's
vision tower and Mamba temporal encoder as the plain torch modules of storm-hf's Hub code.

The Mamba encoder runs once per video inside `embed_multimodal`, like any vision encoder; it keeps no state between
decoding steps, so vLLM treats STORM as an attention-only LLM (no hybrid KV / state cache). Weights load from a
storm-hf Hub folder as saved (the same safetensors): `model.language_model.*` and `lm_head.*` into vLLM's LM,
`model.vision_tower.*` and `model.temporal_encoder.*` into the modules of the same names.
"""

from collections.abc import Iterable

import torch
from torch import nn
from transformers import AutoModel
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
from vllm.config import VllmConfig
from vllm.model_executor.models.interfaces import MultiModalEmbeddings, SupportsMultiModal, SupportsPP
from vllm.model_executor.models.utils import (
    AutoWeightsLoader,
    WeightsMapper,
    init_vllm_registered_model,
    maybe_prefix,
)
from vllm.multimodal import MULTIMODAL_REGISTRY
from vllm.sequence import IntermediateTensors

from ..modeling.modeling_storm import StormTemporalEncoder, StormVisualEncoding
from ..processors.processing_storm import IMAGE_TOKEN, VIDEO_TOKEN
from .processing import StormDummyInputsBuilder, StormMultiModalProcessor, StormProcessingInfo


def causal_lm_architecture(text_config) -> str:
    """The vLLM architecture of STORM's language model (`Qwen2ForCausalLM` for the paper's Qwen2)."""
    if text_config.architectures:
        return text_config.architectures[0]
    return MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[text_config.model_type]


@MULTIMODAL_REGISTRY.register_processor(
    StormMultiModalProcessor, info=StormProcessingInfo, dummy_inputs=StormDummyInputsBuilder
)
class StormForConditionalGeneration(StormVisualEncoding, nn.Module, SupportsMultiModal, SupportsPP):
    hf_to_vllm_mapper = WeightsMapper(
        orig_to_new_prefix={
            "model.language_model.": "language_model.model.",
            "lm_head.": "language_model.lm_head.",
            "model.vision_tower.": "vision_tower.",
            "model.temporal_encoder.": "temporal_encoder.",
        }
    )

    @classmethod
    def get_placeholder_str(cls, modality: str, i: int) -> str | None:
        if modality.startswith("video"):
            return VIDEO_TOKEN
        if modality.startswith("image"):
            return IMAGE_TOKEN
        raise ValueError(f"STORM takes videos and images, not {modality!r}.")

    def __init__(self, *, vllm_config: VllmConfig, prefix: str = ""):
        super().__init__()
        config = vllm_config.model_config.hf_config
        self.config = config
        dtype = vllm_config.model_config.dtype
        with self._mark_tower_model(vllm_config, {"image", "video"}):
            self.vision_tower = AutoModel.from_config(config.vision_config, dtype=dtype)
            self.temporal_encoder = StormTemporalEncoder(config.temporal_config).to(dtype)
        with self._mark_language_model(vllm_config):
            self.language_model = init_vllm_registered_model(
                vllm_config=vllm_config,
                hf_config=config.text_config,
                prefix=maybe_prefix(prefix, "language_model"),
                architectures=[causal_lm_architecture(config.text_config)],
            )
        self.make_empty_intermediate_tensors = self.language_model.make_empty_intermediate_tensors

    def embed_multimodal(self, **kwargs: object) -> MultiModalEmbeddings:
        """One `(tokens, hidden)` tensor per video or image of the batch, in the order they come."""
        embeddings = []
        if kwargs.get("pixel_values_videos") is not None:
            frames = kwargs["pixel_values_videos"]  # (sum T, 3, H, W): the batch's videos one after another
            counts = kwargs["video_frame_counts"].tolist()
            strides = kwargs["temporal_sampling_stride"].tolist()
            embeddings.extend(self.encode_video_frames(frames, counts, strides))
        if kwargs.get("pixel_values") is not None:
            embeddings.extend(self.get_image_features(kwargs["pixel_values"]).pooler_output)
        return embeddings

    def forward(
        self,
        input_ids: torch.Tensor | None,
        positions: torch.Tensor,
        intermediate_tensors: IntermediateTensors | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: object,
    ) -> torch.Tensor | IntermediateTensors:
        if intermediate_tensors is not None:
            inputs_embeds = None
        return self.language_model.model(input_ids, positions, intermediate_tensors, inputs_embeds=inputs_embeds)

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor | None:
        return self.language_model.compute_logits(hidden_states)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        return AutoWeightsLoader(self).load_weights(weights, mapper=self.hf_to_vllm_mapper)
