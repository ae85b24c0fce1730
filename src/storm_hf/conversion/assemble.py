"""A trainable STORM from a pretrained vision model and a pretrained causal LM: the paper's starting point.

The vision tower and the language model keep their pretrained weights; the temporal encoder (linear projection and
Mamba blocks) is randomly initialised with the model's own initialisation. `hidden_size` comes from the language
model and `vision_hidden_size` from the vision model.
"""

from dataclasses import replace
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from ..modeling.configuration_storm import StormConfig
from ..modeling.modeling_storm import StormTemporalEncoder
from .convert import DTYPES, build_empty_model
from .hub_export import export_hub_folder
from .model_card import CardInfo
from .parts import build_processor, load_generation_config, load_tokenizer
from .research_checkpoint import ConversionError
from .tokens import fit_embeddings_to_tokenizer, placeholder_token_ids


def _check_source(source, what: str) -> None:
    """A source written as a path (absolute, or starting with . or ~) must exist; anything else is a Hub id."""
    path = Path(source).expanduser()
    if (path.is_absolute() or str(source).startswith((".", "~"))) and not path.exists():
        raise ConversionError(f"The {what} folder {source} does not exist: pass a local folder or a Hub id.")


def _vision_config(source):
    config = AutoConfig.from_pretrained(source)
    config = getattr(config, "vision_config", config)  # a full SigLIP (vision + text) model: keep its vision half
    config.vision_use_head = False  # STORM reads a hidden layer; the pooling head is not part of it
    return config


def _load_pretrained(auto_class, source, config, dtype, what: str):
    """A pretrained part, refusing one whose checkpoint lacks weights (transformers would initialise them randomly)."""
    model, info = auto_class.from_pretrained(source, config=config, dtype=dtype, output_loading_info=True)
    if info["missing_keys"]:
        raise ConversionError(
            f"The {what} at {source} lacks weights its config calls for ({', '.join(sorted(info['missing_keys']))}): "
            f"pass a complete {what} checkpoint."
        )
    return model


def _resolve_dtype(name: str, text_config) -> torch.dtype:
    """A named dtype, or with "auto" the language model's stored dtype (float32 when it records none)."""
    if name != "auto":
        return DTYPES[name]
    stored = getattr(text_config, "dtype", None) or torch.float32
    return getattr(torch, stored) if isinstance(stored, str) else stored


def _is_local(source) -> bool:
    return Path(source).exists()


def assemble_storm(
    vision,
    llm,
    out_dir,
    *,
    temporal_pool_size: int = 4,
    spatial_pool_size: int = 1,
    num_layers: int = 2,
    bidirectional: bool = True,
    vision_feature_layer: int = -2,
    dtype: str = "auto",
    seed: int = 0,
    overwrite: bool = False,
    max_shard_size: str | int = "5GB",
    model_id: str | None = None,
    card: CardInfo | None = None,
) -> Path:
    """Build STORM from `vision` (a SigLIP vision model) and `llm` (a causal LM), local folders or Hub ids, and export
    it with processor, tokenizer (placeholders added) and chat template to `out_dir`. Returns the folder. `card`:
    the license, ... of the result for the model card (nothing is assumed; the parts given as Hub ids are added as
    base models)."""
    _check_source(vision, "vision model")
    _check_source(llm, "language model")
    vision_config, text_config = _vision_config(vision), AutoConfig.from_pretrained(llm)
    tokenizer, _ = load_tokenizer(llm)
    try:
        config = StormConfig(
            vision_config=vision_config,
            text_config=text_config,
            temporal_config={
                "temporal_pool_size": temporal_pool_size,
                "spatial_pool_size": spatial_pool_size,
                "num_layers": num_layers,
                "bidirectional": bidirectional,
            },
            vision_feature_layer=vision_feature_layer,
            **placeholder_token_ids(tokenizer),
        )
    except ValueError as error:
        raise ConversionError(f"These settings do not make a valid STORM model: {error}") from error
    torch_dtype = _resolve_dtype(dtype, text_config)
    model = build_empty_model(config, torch_dtype)
    vision_model = _load_pretrained(AutoModel, vision, vision_config, torch_dtype, "vision model")
    model.model.vision_tower.load_state_dict(vision_model.state_dict())
    del vision_model
    language_model = _load_pretrained(AutoModelForCausalLM, llm, None, torch_dtype, "language model")
    model.model.language_model.load_state_dict(language_model.base_model.state_dict())
    model.lm_head.load_state_dict(language_model.get_output_embeddings().state_dict())
    del language_model
    torch.manual_seed(seed)
    encoder = StormTemporalEncoder(config.temporal_config)  # initialised in float32, then cast by the copy
    model.model.temporal_encoder.load_state_dict(encoder.state_dict())

    fit_embeddings_to_tokenizer(model, tokenizer)
    generation_config = load_generation_config(llm)
    if generation_config is not None:
        model.generation_config = generation_config
    processor = build_processor(tokenizer, model.config, vision)
    card = card or CardInfo()
    hub_parts = [str(source) for source in (vision, llm) if not _is_local(source)]
    training = (
        f"Assembled with `storm-hf init` from the vision model `{vision}` and the language model `{llm}`. The "
        f"temporal encoder is randomly initialised (seed {seed}) and **untrained**: train it (`storm-hf train "
        "--stage align`, then `--stage sft`) before use."
    )
    return export_hub_folder(
        model,
        processor,
        out_dir,
        max_shard_size=max_shard_size,
        overwrite=overwrite,
        model_id=model_id,
        card=replace(card, base_models=list(dict.fromkeys(card.base_models + hub_parts)), training=training),
    )
