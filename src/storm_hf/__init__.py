"""storm-hf: STORM (Mamba temporal encoder + video token reduction) for Hugging Face Transformers.

Importing the package registers the Storm classes with transformers' Auto factories, so
`AutoModelForImageTextToText.from_pretrained(folder)` works without `trust_remote_code`.
"""

import transformers

from .modeling.configuration_storm import StormConfig, StormTemporalConfig
from .modeling.modeling_storm import (
    StormForConditionalGeneration,
    StormModel,
    StormPreTrainedModel,
    StormTemporalEncoder,
)
from .modeling.streaming_storm import StormStreamingSession
from .processors.pipeline_storm import StormVideoTextToTextPipeline
from .processors.processing_storm import StormProcessor
from .processors.video_processing_storm import StormVideoProcessor

__version__ = "0.1.0"


def _register() -> None:
    transformers.AutoConfig.register(StormConfig.model_type, StormConfig, exist_ok=True)
    transformers.AutoConfig.register(StormTemporalConfig.model_type, StormTemporalConfig, exist_ok=True)
    # AutoModel gives the model that generates, as remote-code VLMs on the Hub do; the base model is its `.model`.
    transformers.AutoModel.register(StormConfig, StormForConditionalGeneration, exist_ok=True)
    transformers.AutoModel.register(StormTemporalConfig, StormTemporalEncoder, exist_ok=True)
    # AutoModelForMultimodalLM appeared after transformers 5.17
    for name in ("AutoModelForImageTextToText", "AutoModelForMultimodalLM"):
        auto_class = getattr(transformers, name, None)
        if auto_class is not None:
            auto_class.register(StormConfig, StormForConditionalGeneration, exist_ok=True)
    transformers.AutoVideoProcessor.register(StormConfig, StormVideoProcessor, exist_ok=True)
    transformers.AutoProcessor.register(StormConfig, StormProcessor, exist_ok=True)
    transformers.pipelines.PIPELINE_REGISTRY.register_pipeline(
        "video-text-to-text",
        pipeline_class=StormVideoTextToTextPipeline,
        pt_model=transformers.AutoModelForImageTextToText,
        type="multimodal",
    )


_register()

__all__ = [
    "StormConfig",
    "StormForConditionalGeneration",
    "StormModel",
    "StormPreTrainedModel",
    "StormProcessor",
    "StormStreamingSession",
    "StormTemporalConfig",
    "StormTemporalEncoder",
    "StormVideoProcessor",
    "StormVideoTextToTextPipeline",
]
