"""Write a Hub-ready STORM folder: weights, configs, processor, Hub code and model card, atomically.

The folder loads with `trust_remote_code=True` where storm-hf is not installed (the Hub code files are copied in
flat and named in `auto_map`), and without it where storm-hf is installed (importing it registers the classes). A
folder written without code names no code either (no `auto_map` in any config). Every file is readable by all
(0644), as a Hub folder is meant to be shared.
"""

import json
import shutil
import tempfile
from pathlib import Path

from .. import modeling, processors
from .model_card import CardInfo, write_model_card

AUTO_MAP = {
    "AutoConfig": "configuration_storm.StormConfig",
    "AutoModel": "modeling_storm.StormForConditionalGeneration",
    "AutoModelForImageTextToText": "modeling_storm.StormForConditionalGeneration",
    "AutoModelForMultimodalLM": "modeling_storm.StormForConditionalGeneration",
}
PROCESSOR_AUTO_MAP = {
    "AutoProcessor": "processing_storm.StormProcessor",
    "AutoVideoProcessor": "video_processing_storm.StormVideoProcessor",
}
PIPELINE_TASK = "video-text-to-text"
CUSTOM_PIPELINES = {
    PIPELINE_TASK: {
        "impl": "pipeline_storm.StormVideoTextToTextPipeline",
        "pt": ["AutoModelForImageTextToText"],
        "tf": [],
        "type": "multimodal",
    }
}
# Config attributes that point at code: StormConfig keeps a loaded folder's pipeline entry aside (and writes it back).
_CODE_POINTERS = ("auto_map", "custom_pipelines", "_served_custom_pipelines")
# Saved processor configs that get the processor's auto_map (transformers looks for it in any of them).
_PROCESSOR_CONFIG_FILES = ("processor_config.json", "video_preprocessor_config.json", "tokenizer_config.json")


def hub_code_files() -> list[Path]:
    """The modules shipped with every exported folder: all of modeling/ and processors/, copied flat."""
    files = []
    for package in (modeling, processors):
        files += sorted(p for p in Path(package.__file__).parent.glob("*.py") if p.name != "__init__.py")
    return files


def _set_auto_map(json_path: Path, auto_map: dict | None) -> None:
    """Name the Hub code classes in a saved processor config and the video processor config nested in it, or (None)
    remove every `auto_map` there, for a folder without code."""
    config = json.loads(json_path.read_text())
    for section in (config, config.get("video_processor")):
        if isinstance(section, dict):
            section.pop("auto_map", None)
            if auto_map is not None:
                section["auto_map"] = dict(auto_map)
    json_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _save_model(model, folder: Path, max_shard_size, include_code: bool) -> None:
    """Save with the Hub code named in config.json (or with no code pointers), leaving the caller's config as it was."""
    config = model.config
    saved = {key: config.__dict__[key] for key in _CODE_POINTERS if key in config.__dict__}
    for key in _CODE_POINTERS:
        config.__dict__.pop(key, None)
    if include_code:
        config.auto_map, config.custom_pipelines = dict(AUTO_MAP), CUSTOM_PIPELINES
    try:
        model.save_pretrained(folder, max_shard_size=max_shard_size)
    finally:
        for key in _CODE_POINTERS:
            config.__dict__.pop(key, None)
        config.__dict__.update(saved)


def _write_folder(model, processor, folder: Path, max_shard_size, include_code: bool, card_options: dict) -> None:
    _save_model(model, folder, max_shard_size, include_code)
    processor.save_pretrained(folder)
    for name in _PROCESSOR_CONFIG_FILES:
        if (folder / name).exists():
            _set_auto_map(folder / name, PROCESSOR_AUTO_MAP if include_code else None)
    if include_code:
        for source in hub_code_files():
            shutil.copy2(source, folder / source.name)
    write_model_card(folder / "README.md", model.config, processor, include_code=include_code, **card_options)
    for path in folder.iterdir():
        path.chmod(0o644)  # safetensors writes owner-only files


def export_hub_folder(
    model,
    processor,
    out_dir,
    *,
    max_shard_size: str | int = "5GB",
    overwrite: bool = False,
    model_id: str | None = None,
    card: CardInfo | None = None,
    include_code: bool = True,
) -> Path:
    """Write `model` + `processor` to `out_dir` as a Hub folder; returns its path.

    Everything is written to a temporary folder beside `out_dir` and moved into place at the end, so an interrupted
    export leaves nothing behind. An existing non-empty `out_dir` is refused unless `overwrite=True`.
    `model_id` is the Hub id the model card's examples use (default: the folder's name). `card` holds what the model
    card says beyond the config: license, base models, datasets, languages, training, evaluation (default: nothing
    known, which the card states). `include_code=False` writes a folder for the installed package only: no Hub code
    files and no `auto_map`.
    """
    out = Path(out_dir).resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise FileExistsError(f"{out} already exists and is not empty: choose another folder or pass overwrite=True.")
    out.parent.mkdir(parents=True, exist_ok=True)
    card_options = {"model_id": model_id or out.name, "info": card or CardInfo()}
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the exported folder is meant to be shared
    try:
        _write_folder(model, processor, staging, max_shard_size, include_code, card_options)
        if out.exists():
            replaced = out.with_name(f".{out.name}.replaced")
            out.rename(replaced)
            staging.rename(out)
            shutil.rmtree(replaced) if replaced.is_dir() else replaced.unlink()
        else:
            staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
