"""STORM in vLLM: an out-of-tree model plugin.

Installing storm-hf declares the entry point `storm_hf = storm_hf.vllm:register` in vLLM's `vllm.general_plugins`
group, so every vLLM process (API server, engine, workers) calls `register()` before it loads a model. It registers
the architecture by its import path (the model module, which imports vLLM's layers, is imported only when a STORM
checkpoint is loaded), STORM's configuration and processor classes with transformers' Auto factories, and the
`storm` video loader with the model configuration hook that selects it.

Written against vLLM 0.32 (`VLLM_VERSION`); its multimodal processing API changes between minor releases.
"""

ARCHITECTURE = "StormForConditionalGeneration"
VLLM_VERSION = "0.32"


def register() -> None:
    import storm_hf  # noqa: F401  (registers StormConfig and StormProcessor with transformers' Auto classes)
    from vllm import ModelRegistry

    from .video_loader import register_video_loader

    if ARCHITECTURE not in ModelRegistry.get_supported_archs():
        ModelRegistry.register_model(ARCHITECTURE, f"{__name__}.model:StormForConditionalGeneration")
    register_video_loader(ARCHITECTURE)
