"""Parity checks of a converted model against its research parts, and the conversion report.

- vision tower: features at the selected layer vs the stock vision model loaded from the research `vision_tower/`;
- language model: text-only logits vs the stock causal LM loaded from the research `llm/`;
- temporal encoder: every tensor bit-equal to its source (cast to the output dtype);
- generation: a greedy generation on a small video, through the processor.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import MODEL_FOR_CAUSAL_LM_MAPPING, MODEL_MAPPING, AutoModel, AutoModelForCausalLM

from . import research_layout as layout

# max |diff| allowed, relative to max(1, max |reference|): the converted model runs the same code on the same weights.
TOLERANCES = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 1e-3}
_SEED = 0


@dataclass
class PartCheck:
    part: str
    tensors: int
    check: str
    max_abs_diff: float | None = None  # None: not checked
    tolerance: float | None = None

    @property
    def passed(self) -> bool:
        return self.max_abs_diff is None or self.max_abs_diff <= self.tolerance


@dataclass
class ConversionReport:
    source: Path
    dtype: torch.dtype
    copied: dict[str, int]  # part -> tensors copied
    dropped: dict[str, int]  # part -> source tensors dropped on purpose
    defaults: dict  # research config keys absent -> default assumed
    added_tokens: list[str]
    added_rows: int
    checks: list[PartCheck] = field(default_factory=list)
    generation: str | None = None
    generation_error: str | None = None
    output: Path | None = None

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks) and self.generation_error is None

    def format(self) -> str:
        lines = [f"Conversion of {self.source} ({str(self.dtype).removeprefix('torch.')})"]
        checks = self.checks or [
            PartCheck(part.description, self.copied.get(part.name, 0), "not checked (--no-verify)")
            for part in layout.PARTS
        ]
        width = max(len(check.part) for check in checks)
        for check in checks:
            if check.max_abs_diff is None:
                result = ""
            else:
                verdict = "ok" if check.passed else "FAILED"
                result = f"max |diff| {check.max_abs_diff:.3g} (tolerance {check.tolerance:.3g}) {verdict}"
            lines.append(f"  {check.part:<{width}}  {check.tensors:>5} tensors copied  {check.check:<48} {result}")
        for part, count in self.dropped.items():
            lines.append(f"  dropped on purpose: {count} {part} tensors (see research_layout.TENSOR_RULES)")
        if self.added_tokens:
            lines.append(f"  added tokens: {', '.join(self.added_tokens)} ({self.added_rows} embedding rows added)")
        if self.defaults:
            assumed = ", ".join(f"{key}={value!r}" for key, value in self.defaults.items())
            lines.append(f"  research config keys absent, defaults assumed: {assumed}")
        if self.generation is not None:
            lines.append(f"  generation: {self.generation}")
        if self.generation_error is not None:
            lines.append(f"  generation FAILED: {self.generation_error}")
        if self.output is not None:
            lines.append(f"Written to {self.output}")
        return "\n".join(lines)


def _max_abs_diff(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return (ours.float() - reference.float()).abs().max().item()


def _tolerance(dtype: torch.dtype, reference: torch.Tensor) -> float:
    return TOLERANCES[dtype] * max(1.0, reference.float().abs().max().item())


def _output_check(part: layout.Part, copied: int, what: str, ours, expected, dtype: torch.dtype) -> PartCheck:
    """Our outputs against the stock model's, within `dtype`'s tolerance scaled to the outputs' size."""
    return PartCheck(part.description, copied, what, _max_abs_diff(ours, expected), _tolerance(dtype, expected))


def _reference_model(checkpoint, part: layout.Part, auto_class, mapping, dtype: torch.dtype):
    """The stock transformers model of a research part: from its sub-folder, or from the single file's tensors."""
    folder = checkpoint.part_dirs[part.name]
    if folder is not None:
        return auto_class.from_pretrained(folder, dtype=dtype).eval()
    config = checkpoint.part_configs[part.name]
    state_dict = checkpoint.tensors[part.name].as_state_dict()
    return mapping[type(config)].from_pretrained(None, config=config, state_dict=state_dict, dtype=dtype).eval()


def _check_vision(model, checkpoint, copied: int) -> PartCheck:
    config = model.config
    size = config.vision_config.image_size
    generator = torch.Generator().manual_seed(_SEED)
    pixels = torch.randn(2, 3, size, size, generator=generator).to(model.dtype)
    reference = _reference_model(checkpoint, layout.VISION, AutoModel, MODEL_MAPPING, model.dtype)
    layer = config.vision_feature_layer
    expected = reference(pixels, output_hidden_states=True).hidden_states[layer]  # (N, G*G, C)
    name = type(reference).__name__
    del reference
    ours = model.model._encode_frames(pixels).flatten(1, 2)  # the features STORM feeds forward, (N, G*G, C)
    return _output_check(layout.VISION, copied, f"features at layer {layer} vs {name}", ours, expected, model.dtype)


def _check_language_model(model, checkpoint, copied: int) -> PartCheck:
    reference = _reference_model(checkpoint, layout.LLM, AutoModelForCausalLM, MODEL_FOR_CAUSAL_LM_MAPPING, model.dtype)
    vocab = reference.get_input_embeddings().weight.shape[0]
    input_ids = torch.randint(0, vocab, (2, 16), generator=torch.Generator().manual_seed(_SEED))
    expected = reference(input_ids=input_ids).logits
    name = type(reference).__name__
    del reference
    ours = model(input_ids=input_ids).logits[..., :vocab]  # rows added for new tokens are not in the reference
    return _output_check(layout.LLM, copied, f"text-only logits vs {name}", ours, expected, model.dtype)


def _check_projector(model, checkpoint, pairs: list[tuple[str, str]]) -> PartCheck:
    store = checkpoint.tensors[layout.PROJECTOR.name]
    diffs = [_max_abs_diff(model.get_parameter(target), store.read(key).to(model.dtype)) for key, target in pairs]
    worst = torch.tensor(diffs).max().item() if diffs else 0.0  # NaN propagates, and fails the check
    return PartCheck(layout.PROJECTOR.description, len(pairs), "tensors bit-equal to the source", worst, 0.0)


def _check_generation(model, processor) -> str:
    """Greedy generation on a small synthetic video through the processor; returns what happened."""
    temporal = model.config.temporal_config
    frames = temporal.temporal_pool_size  # the shortest video the model accepts
    rng = np.random.default_rng(_SEED)
    video = rng.integers(0, 256, (frames, 64, 64, 3), dtype=np.uint8)
    inputs = processor(text=f"{processor.video_token}Describe the video.", videos=[video], return_tensors="pt")
    new_tokens = 4
    output = model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
    generated = output.shape[1] - inputs["input_ids"].shape[1]
    if generated != new_tokens:
        raise RuntimeError(f"generated {generated} tokens instead of {new_tokens}")
    video_tokens = int((inputs["input_ids"] == model.config.video_token_id).sum())
    return f"greedy, {frames}-frame video ({video_tokens} video tokens) -> {generated} new tokens"


@torch.no_grad()
def verify_conversion(report: ConversionReport, model, processor, checkpoint, plan) -> None:
    """Run the parity checks, adding their results to `report`."""
    report.checks = [
        _check_vision(model, checkpoint, report.copied[layout.VISION.name]),
        _check_projector(model, checkpoint, plan.moves[layout.PROJECTOR.name]),
        _check_language_model(model, checkpoint, report.copied[layout.LLM.name]),
    ]
    try:
        report.generation = _check_generation(model, processor)
    except Exception as error:  # any failure to generate is a failed check, reported with its cause
        report.generation_error = f"{type(error).__name__}: {error}"
