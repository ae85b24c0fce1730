"""Research checkpoint -> STORM Hub folder: build the model natively, copy every tensor in, check parity, export.

The model is built from the research config and filled by copying tensors (no load-time key renames, which
`save_pretrained` would write back out). Every source tensor is used exactly once and every model tensor is filled;
anything else stops the conversion before a byte is written.
"""

import copy
import re
from dataclasses import dataclass, field, replace

import torch
from tqdm.auto import tqdm
from transformers import initialization

from ..modeling.configuration_storm import StormConfig
from ..modeling.modeling_storm import StormForConditionalGeneration
from . import research_layout as layout
from .hub_export import export_hub_folder
from .model_card import CardInfo
from .parts import build_processor, load_generation_config, load_tokenizer
from .research_checkpoint import ConversionError, ResearchCheckpoint
from .tokens import fit_embeddings_to_tokenizer, placeholder_token_ids
from .verify import ConversionReport, verify_conversion

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_LISTED = 20  # names shown per kind of problem


@dataclass
class CopyPlan:
    """Per part: (source key, model tensor name) pairs to copy, and source keys dropped on purpose."""

    moves: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    dropped: dict[str, list[str]] = field(default_factory=dict)


def storm_config_from_checkpoint(checkpoint: ResearchCheckpoint, token_ids: dict) -> tuple[StormConfig, dict]:
    """The StormConfig a research checkpoint describes, and the research keys that were absent (key -> default)."""
    defaults = {}

    def read(table: dict) -> dict:
        values = {}
        for target, (key, default) in table.items():
            values[target], present = checkpoint.setting(key, default)
            if not present:
                defaults[key] = default
        return values

    select_feature, _ = checkpoint.setting(layout.SELECT_FEATURE_KEY, layout.SUPPORTED_SELECT_FEATURES[0])
    if select_feature not in layout.SUPPORTED_SELECT_FEATURES:
        raise ConversionError(
            f"{layout.SELECT_FEATURE_KEY}={select_feature!r}: STORM feeds every patch token of its SigLIP tower "
            f"forward, so only {' or '.join(map(repr, layout.SUPPORTED_SELECT_FEATURES))} can be converted."
        )
    # copies: the checkpoint's own configs keep describing the research parts (the parity references)
    vision = copy.deepcopy(checkpoint.part_configs[layout.VISION.name])
    vision.vision_use_head = False  # STORM reads a hidden layer; the pooling head is dropped
    try:
        config = StormConfig(
            vision_config=vision,
            text_config=copy.deepcopy(checkpoint.part_configs[layout.LLM.name]),
            temporal_config=read(layout.TEMPORAL_CONFIG_KEYS),
            **read(layout.STORM_CONFIG_KEYS),
            **token_ids,
        )
    except ValueError as error:
        raise ConversionError(f"The research config does not describe a valid STORM model: {error}") from error
    return config, defaults


def choose_dtype(checkpoint: ResearchCheckpoint, dtype: str | None) -> torch.dtype:
    """The requested dtype, else the one floating dtype all source tensors share."""
    if dtype is not None:
        return DTYPES[dtype]
    found = {}
    for store in (*checkpoint.tensors.values(), checkpoint.leftover):
        for info in store.infos.values():
            if info.dtype.is_floating_point:
                found[info.dtype] = found.get(info.dtype, 0) + 1
    if len(found) != 1:
        counts = ", ".join(f"{str(d).removeprefix('torch.')}: {n} tensors" for d, n in found.items()) or "none"
        raise ConversionError(
            f"The checkpoint's floating-point tensors do not share one dtype ({counts}): choose the output dtype "
            f"with --dtype ({', '.join(DTYPES)})."
        )
    return next(iter(found))


def build_empty_model(config: StormConfig, dtype: torch.dtype) -> StormForConditionalGeneration:
    """The model with uninitialised weights in `dtype`; every weight is filled by the copy that follows."""
    with initialization.no_init_weights():
        model = StormForConditionalGeneration._from_config(config, dtype=dtype)
    model.tie_weights()  # skipped with the initialisation
    return model.eval()


def model_tensors(model) -> dict[str, torch.Tensor]:
    """Every tensor the model saves, under one name each (a tied weight appears once, under its first name)."""
    saved = set(model.state_dict())
    return {**dict(model.named_parameters()), **{n: b for n, b in model.named_buffers() if n in saved}}


def _target_name(part: layout.Part, key: str) -> tuple[bool, str | None]:
    """(matched, model tensor name or None when dropped) for a part's source key."""
    for rule_part, pattern, replacement in layout.TENSOR_RULES:
        if rule_part is part:
            match = re.fullmatch(pattern, key)
            if match:
                return True, None if replacement is None else match.expand(replacement)
    return False, None


def _listed(items: list[str]) -> str:
    shown = "\n    ".join(items[:_LISTED])
    more = f"\n    ... and {len(items) - _LISTED} more" if len(items) > _LISTED else ""
    return f"\n    {shown}{more}"


def plan_copy(checkpoint: ResearchCheckpoint, targets: dict[str, torch.Tensor], defaults: dict) -> CopyPlan:
    """Map every source tensor to a model tensor; stop with the full list of problems if any tensor does not fit."""
    plan = CopyPlan()
    unexpected = [f"{key} (belongs to no part)" for key in checkpoint.leftover.infos]
    wrong_shape, filled = [], {}
    for part in layout.PARTS:
        store = checkpoint.tensors[part.name]
        moves, dropped = plan.moves.setdefault(part.name, []), plan.dropped.setdefault(part.name, [])
        for key, info in store.infos.items():
            matched, target = _target_name(part, key)
            if matched and target is None:
                dropped.append(key)
            elif target not in targets:
                why = f" (-> {target}, which the model lacks or ties to another tensor)" if matched else ""
                unexpected.append(f"{part.name}: {key}{why}")
            elif target in filled:
                unexpected.append(f"{part.name}: {key} (-> {target}, already filled by {filled[target]})")
            elif info.shape != tuple(targets[target].shape):
                wrong_shape.append(
                    f"{part.name}: {key} is {list(info.shape)}, {target} needs {list(targets[target].shape)}"
                )
                filled[target] = f"{part.name}: {key}"
            else:
                moves.append((key, target))
                filled[target] = f"{part.name}: {key}"
    missing = [name for name in targets if name not in filled]
    if missing or unexpected or wrong_shape:
        sections = [
            ("missing (no source tensor fills them)", missing),
            ("unexpected (no model tensor for them)", unexpected),
            ("wrong shape", wrong_shape),
        ]
        listing = "".join(f"\n  {title}: {len(items)}{_listed(items)}" for title, items in sections if items)
        assumed = ", ".join(f"{key}={value!r}" for key, value in defaults.items()) or "none"
        raise ConversionError(
            f"The tensors of {checkpoint.root} do not fit the STORM model its config describes:{listing}\n"
            f"Research config keys absent, defaults assumed: {assumed}. If the config names these settings "
            "differently, or the checkpoint names its tensors differently, adapt the table in "
            "storm_hf/conversion/research_layout.py (TEMPORAL_CONFIG_KEYS, TENSOR_RULES)."
        )
    return plan


def copy_tensors(checkpoint: ResearchCheckpoint, plan: CopyPlan, targets: dict, progress: bool = True) -> None:
    moves = [(part, key, target) for part, pairs in plan.moves.items() for key, target in pairs]
    with torch.no_grad():
        for part, key, target in tqdm(moves, desc="Copying", unit="tensor", disable=not progress):
            targets[target].copy_(checkpoint.tensors[part].read(key))


def convert_research_checkpoint(
    research_path,
    out_dir,
    *,
    dtype: str | None = None,
    tokenizer=None,
    verify: bool = True,
    overwrite: bool = False,
    max_shard_size: str | int = "5GB",
    model_id: str | None = None,
    card: CardInfo | None = None,
    progress: bool = True,
) -> ConversionReport:
    """Convert a research checkpoint (folder layout or one state-dict file) into a STORM Hub folder at `out_dir`.

    Nothing is written when a tensor does not fit or a parity check fails (`ConversionError`). `card`: the license,
    base models, ... of the research weights for the model card (nothing is assumed; the card records the
    conversion as the training section).
    """
    checkpoint = ResearchCheckpoint.open(research_path, tokenizer=tokenizer, progress=progress)
    text_tokenizer, added_tokens = load_tokenizer(checkpoint.tokenizer_dir)
    config, defaults = storm_config_from_checkpoint(checkpoint, placeholder_token_ids(text_tokenizer))
    model = build_empty_model(config, choose_dtype(checkpoint, dtype))
    targets = model_tensors(model)
    plan = plan_copy(checkpoint, targets, defaults)
    copy_tensors(checkpoint, plan, targets, progress)
    added_rows = fit_embeddings_to_tokenizer(model, text_tokenizer)
    generation_config = load_generation_config(checkpoint.part_dirs[layout.LLM.name])
    if generation_config is not None:
        model.generation_config = generation_config
    max_frames, _ = checkpoint.setting(layout.NUM_FRAMES_KEY, None)
    processor = build_processor(text_tokenizer, model.config, checkpoint.part_dirs[layout.VISION.name], max_frames)

    report = ConversionReport(
        source=checkpoint.root,
        dtype=model.dtype,
        copied={part: len(pairs) for part, pairs in plan.moves.items()},
        dropped={part: len(keys) for part, keys in plan.dropped.items() if keys},
        defaults=defaults,
        added_tokens=added_tokens,
        added_rows=added_rows,
    )
    if verify:
        verify_conversion(report, model, processor, checkpoint, plan)
        if not report.passed:
            raise ConversionError(f"{report.format()}\nA parity check failed: nothing was written to {out_dir}.")
    training = (
        f"Converted with `storm-hf convert` from the research checkpoint `{checkpoint.root.name}` (VILA layout): "
        f"every tensor copied, {'parity with the research parts checked' if verify else 'parity not checked'}. "
        "How those weights were trained is not recorded in the checkpoint: see its own documentation."
    )
    report.output = export_hub_folder(
        model,
        processor,
        out_dir,
        max_shard_size=max_shard_size,
        overwrite=overwrite,
        model_id=model_id,
        card=replace(card or CardInfo(), training=training),
    )
    return report
