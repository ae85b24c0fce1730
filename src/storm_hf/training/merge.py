"""Merge a trained LoRA adapter into its base model and write the result as a Hub folder."""

from pathlib import Path

import torch


def load_adapter_model(base, adapter, dtype: torch.dtype = torch.float32):
    """The base STORM model (a folder or Hub id) with the LoRA adapter folder `adapter` loaded on top (a PeftModel)."""
    from peft import PeftModel

    from .. import StormForConditionalGeneration

    if not (Path(adapter) / "adapter_config.json").is_file():
        raise FileNotFoundError(
            f"No LoRA adapter at {adapter} (adapter_config.json is missing): give the folder `storm-hf train --lora` "
            "wrote (<output-dir>/adapter) or a checkpoint folder of that run."
        )
    model = StormForConditionalGeneration.from_pretrained(base, dtype=dtype)
    return PeftModel.from_pretrained(model, adapter)


def merge_lora(base, adapter, out_dir, *, overwrite: bool = False) -> Path:
    """Fold the adapter's low-rank updates into the base weights (in fp32, stored back in the base's dtype) and
    export the merged model with the processor saved beside the adapter (or the base's) to `out_dir`."""
    from transformers import AutoConfig

    from ..conversion.hub_export import export_hub_folder
    from ..conversion.model_card import CardInfo
    from ..processors.processing_storm import StormProcessor

    saved_dtype = AutoConfig.from_pretrained(base).dtype
    merged = load_adapter_model(base, adapter).merge_and_unload()
    if isinstance(saved_dtype, torch.dtype):
        merged = merged.to(saved_dtype)
    processor_source = adapter if (Path(adapter) / "processor_config.json").is_file() else base
    processor = StormProcessor.from_pretrained(processor_source)
    card = CardInfo.read(base).derived(str(base), f"The LoRA adapter `{adapter}` merged into `{base}` by storm-hf.")
    return export_hub_folder(merged, processor, out_dir, overwrite=overwrite, card=card)
