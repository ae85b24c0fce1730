"""One measurement, described by a JSON-able spec; `run_isolated` runs it in a fresh Python process, so that the
process's peak memory belongs to that measurement alone:

    python -m storm_hf.benchmarking.runner SPEC.json RESULT.json

Measurements:
    "generate"  `repeats` timed `model.generate` calls of one setting on one decoded clip, after a warm-up on a
                short clip: seconds and peak memory per stage, the KV cache.
    "features"  `model.get_video_features` on a clip of random frames: the vision stage's and the temporal
                encoder's memory above what they start from, and the sizes of the tensors that grow with frames.
"""

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ..modeling.modeling_storm import StormForConditionalGeneration
from .memory import MemoryProbe
from .scales import SCALES, Setting, build_config
from .stages import StageClock, kv_cache_bytes
from .tokens import count_tokens, prompt_ids


def build_model(spec: dict) -> tuple[StormForConditionalGeneration, Setting]:
    """The spec's model with random weights, on its device, in its dtype, ready to generate a fixed token count."""
    setting = Setting(**spec["setting"])
    config = build_config(SCALES[spec["scale"]], setting, spec.get("vision"), spec.get("text"))
    torch.manual_seed(0)
    with torch.device(spec["device"]):
        model = StormForConditionalGeneration._from_config(config, dtype=getattr(torch, spec["dtype"])).eval()
    # Random weights: never stop early, always generate max_new_tokens.
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model, setting


def _generate(model, setting: Setting, pixels: torch.Tensor, new_tokens: int):
    """Greedy generation over a prompt in StormProcessor's layout for the clip `pixels` (1, T, 3, S, S)."""
    ids = prompt_ids(model.config, count_tokens(model.config, setting, pixels.shape[1])).to(pixels.device)
    out = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        pixel_values_videos=pixels,
        temporal_sampling_stride=setting.temporal_sampling_stride,
        max_new_tokens=new_tokens,
        do_sample=False,
        return_dict_in_generate=True,
    )
    if out.sequences.shape[1] - ids.shape[1] != new_tokens:
        raise RuntimeError(f"generate returned {out.sequences.shape[1] - ids.shape[1]} new tokens, not {new_tokens}.")
    return ids, out


def measure_generate(spec: dict) -> dict:
    """Medians over `repeats` runs; peaks are the highest over the runs."""
    model, setting = build_model(spec)
    memory = MemoryProbe(model.device)
    model_bytes = memory.now()
    pixels = torch.load(spec["pixels"], weights_only=True).to(model.device)  # (1, T, 3, S, S)
    clock = StageClock(model, memory)
    runs = []  # per run: seconds per stage plus "generate" (the whole call), its peak, each stage's peak above start
    with torch.inference_mode():
        _generate(model, setting, pixels[:, : spec["warmup_frames"]], 2)
        for _ in range(spec["repeats"]):
            clock.start()
            start = time.perf_counter()
            ids, out = _generate(model, setting, pixels, spec["new_tokens"])
            clock.finish()
            seconds = {"generate": time.perf_counter() - start, **clock.seconds}
            runs.append({"seconds": seconds, "peak": max(clock.peak.values()), "above_start": dict(clock.peak_above_start)})
    peak = max(run["peak"] for run in runs)
    return {
        "tokens": count_tokens(model.config, setting, pixels.shape[1]).as_dict(),
        "prompt_tokens": ids.shape[1],
        "seconds": {key: statistics.median(run["seconds"][key] for run in runs) for key in runs[0]["seconds"]},
        "seconds_each": {key: [run["seconds"][key] for run in runs] for key in runs[0]["seconds"]},
        "memory": {
            "after_build_bytes": model_bytes,
            "peak_bytes": peak,
            "peak_above_model_bytes": peak - model_bytes,
            "stage_peak_above_start_bytes": {key: max(run["above_start"][key] for run in runs) for key in runs[0]["above_start"]},
        },
        "kv_cache": {"bytes": kv_cache_bytes(out.past_key_values), "tokens": out.past_key_values.get_seq_length()},
    }


def measure_features(spec: dict) -> dict:
    """Memory of the vision stage and the temporal encoder for `frames` random frames (no LLM call)."""
    model, setting = build_model(spec)
    config = model.config
    size = config.vision_config.image_size
    pixels = torch.randn(1, spec["frames"], 3, size, size, device=model.device)  # (1, T, 3, S, S), as processed
    clock = StageClock(model, MemoryProbe(model.device))
    with torch.inference_mode():
        model.get_video_features(pixels[:, : spec["warmup_frames"]], temporal_sampling_stride=setting.temporal_sampling_stride)
        clock.start()
        tokens = model.get_video_features(pixels, temporal_sampling_stride=setting.temporal_sampling_stride).pooler_output
    element = torch.empty(0, dtype=model.dtype).element_size()
    grid, down = config.vision_grid_size, config.temporal_config.downsample
    features = spec["frames"] * grid * grid * config.vision_config.hidden_size * element  # (T, G, G, C)
    encoder_input = spec["frames"] * (-(-grid // down)) ** 2 * config.text_config.hidden_size * element  # (T, G/2, G/2, D)
    return {
        "frames": spec["frames"],
        "vision_features_bytes": features,
        "temporal_input_bytes": encoder_input,
        "output_bytes": sum(t.nbytes for t in tokens),
        "vision_peak_above_start_bytes": clock.peak_above_start["vision"],
        "vision_transient_bytes": clock.peak_above_start["vision"] - features,
        "temporal_peak_above_start_bytes": clock.peak_above_start["temporal"],
    }


MEASUREMENTS = {"generate": measure_generate, "features": measure_features}


def run(spec: dict) -> dict:
    return MEASUREMENTS[spec["kind"]](spec)


def run_isolated(spec: dict) -> dict:
    """`run(spec)` in a fresh Python process; its error output is raised on failure."""
    with tempfile.TemporaryDirectory() as folder:
        spec_path, result_path = Path(folder) / "spec.json", Path(folder) / "result.json"
        spec_path.write_text(json.dumps(spec))
        done = subprocess.run(
            [sys.executable, "-m", "storm_hf.benchmarking.runner", str(spec_path), str(result_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if done.returncode:
            raise RuntimeError(f"The measurement {spec['kind']} {spec['setting']['name']} failed:\n{done.stderr[-4000:]}")
        return json.loads(result_path.read_text())


def main(argv: list[str]) -> None:
    spec_path, result_path = argv
    Path(result_path).write_text(json.dumps(run(json.loads(Path(spec_path).read_text()))))


if __name__ == "__main__":
    main(sys.argv[1:])
