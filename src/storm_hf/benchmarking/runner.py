"""Measurements as sessions: a session builds its model once, times one run per `run()`, and `finish()` summarises.

A session lives in this process, or (`isolated=True`) in a fresh Python process of its own, so that the process's
peak memory belongs to that measurement alone. `measure_side_by_side` can keep several sessions open and take their
runs in turn, so that on a machine busy with other work every setting meets the same conditions.

Kinds of session:
    "generate"  timed `model.generate` calls of one setting on one decoded clip, after a warm-up on a short clip:
                seconds and peak memory per stage, medians over the runs, token counts and the KV cache.
    "features"  `model.get_video_features` on a clip of random frames: the vision stage's and the temporal
                encoder's memory above what they start from, and the sizes of the tensors that grow with frames.

Worker protocol (`python -m storm_hf.benchmarking.runner`): the spec as one JSON line on stdin, answered by
`{"ready": true}`; then lines "run" or "finish", each answered by one JSON line.
"""

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile

import torch

from ..modeling.modeling_storm import StormForConditionalGeneration
from ..modeling.token_reduction import reduced_grid_side
from ..modeling.transformers_compat import output_cache
from .memory import MemoryProbe
from .scales import SCALES, Setting, build_config
from .stages import StageClock, kv_cache_bytes
from .tokens import count_tokens, prompt_ids


def build_model(spec: dict) -> tuple[StormForConditionalGeneration, Setting]:
    """The spec's model with random weights, on its device, in its dtype, ready to generate a fixed token count."""
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    setting = Setting(**spec["setting"])
    config = build_config(SCALES[spec["scale"]], setting, spec.get("vision"), spec.get("text"))
    torch.manual_seed(0)
    with torch.device(spec["device"]):
        model = StormForConditionalGeneration._from_config(config, dtype=getattr(torch, spec["dtype"])).eval()
    # Random weights: never stop early, always generate max_new_tokens.
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model, setting


class GenerateSession:
    def __init__(self, spec: dict):
        self.model, self.setting = build_model(spec)
        self.memory = MemoryProbe(self.model.device)
        self.after_build = self.memory.now()
        self.pixels = torch.load(spec["pixels"], weights_only=True).to(self.model.device)  # (1, T, 3, S, S)
        self.new_tokens = spec["new_tokens"]
        self.count = count_tokens(self.model.config, self.setting, self.pixels.shape[1])
        self.clock = StageClock(self.model, self.memory)
        self.runs = []  # per run: seconds per stage and "generate" (the whole call), its peak, stage peaks above start
        self._generate(self.pixels[:, : spec["warmup_frames"]], 2)

    @torch.inference_mode()
    def _generate(self, pixels: torch.Tensor, new_tokens: int):
        """Greedy generation over a prompt in StormProcessor's layout for the clip `pixels` (1, T, 3, S, S)."""
        ids = prompt_ids(self.model.config, count_tokens(self.model.config, self.setting, pixels.shape[1]))
        ids = ids.to(pixels.device)
        out = self.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            pixel_values_videos=pixels,
            temporal_sampling_stride=self.setting.temporal_sampling_stride,
            max_new_tokens=new_tokens,
            do_sample=False,
            return_dict_in_generate=True,
        )
        if out.sequences.shape[1] - ids.shape[1] != new_tokens:
            raise RuntimeError(f"generate returned {out.sequences.shape[1] - ids.shape[1]} tokens, not {new_tokens}.")
        return ids, out

    def run(self) -> dict:
        self.clock.start()
        self.prompt, out = self._generate(self.pixels, self.new_tokens)
        self.clock.finish()
        self.cache = output_cache(out)
        record = {
            "seconds": {"generate": self.clock.elapsed, **self.clock.seconds},
            "peak": max(self.clock.peak.values()),
            "above_start": dict(self.clock.peak_above_start),
        }
        self.runs.append(record)
        return record["seconds"]

    def finish(self) -> dict:
        """Medians over the runs; peaks are the highest over the runs."""
        runs, peak = self.runs, max(run["peak"] for run in self.runs)
        return {
            "tokens": self.count.as_dict(),
            "prompt_tokens": self.prompt.shape[1],
            "seconds": {key: statistics.median(run["seconds"][key] for run in runs) for key in runs[0]["seconds"]},
            "seconds_each": {key: [run["seconds"][key] for run in runs] for key in runs[0]["seconds"]},
            "memory": {
                "after_build_bytes": self.after_build,
                "peak_bytes": peak,
                "peak_above_model_bytes": peak - self.after_build,
                "stage_peak_above_start_bytes": {
                    stage: max(run["above_start"][stage] for run in runs) for stage in runs[0]["above_start"]
                },
            },
            "kv_cache": {"bytes": kv_cache_bytes(self.cache), "tokens": self.cache.get_seq_length()},
        }


class FeatureSession:
    """Memory of the vision stage and the temporal encoder for a clip of `frames` random frames (no LLM call)."""

    def __init__(self, spec: dict):
        self.model, self.setting = build_model(spec)
        size = self.model.config.vision_config.image_size
        self.pixels = torch.randn(1, spec["frames"], 3, size, size, device=self.model.device)  # as processed
        self.clock = StageClock(self.model, MemoryProbe(self.model.device))
        self._features(self.pixels[:, : spec["warmup_frames"]])

    @torch.inference_mode()
    def _features(self, pixels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        stride = self.setting.temporal_sampling_stride
        return self.model.get_video_features(pixels, temporal_sampling_stride=stride).pooler_output

    def run(self) -> dict:
        self.clock.start()
        tokens = self._features(self.pixels)  # the temporal encoder's hooks end the vision and temporal stages
        config, frames = self.model.config, self.pixels.shape[1]
        element = torch.empty(0, dtype=self.model.dtype).element_size()
        grid = config.vision_grid_size
        side = reduced_grid_side(grid, config.temporal_config.downsample, 1)
        features = frames * grid * grid * config.vision_config.hidden_size * element  # (T, G, G, C)
        encoder_input = frames * side * side * config.text_config.hidden_size * element  # (T, G/2, G/2, D)
        self.result = {
            "frames": frames,
            "vision_features_bytes": features,
            "temporal_input_bytes": encoder_input,
            "output_bytes": sum(t.nbytes for t in tokens),
            "vision_peak_above_start_bytes": self.clock.peak_above_start["vision"],
            "vision_transient_bytes": self.clock.peak_above_start["vision"] - features,
            "temporal_peak_above_start_bytes": self.clock.peak_above_start["temporal"],
        }
        return self.result

    def finish(self) -> dict:
        return self.result


SESSIONS = {"generate": GenerateSession, "features": FeatureSession}


# Feature-memory probes run with glibc's mmap threshold fixed at 64 KiB (glibc otherwise raises it at run time), so
# every larger tensor gets its own mapping and goes back to the system when freed: RSS then follows the live
# tensors. Without it a probe's peak depends on which freed memory glibc kept for reuse (20-30 MiB run to run).
FEATURE_PROBE_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}


class WorkerSession:
    """A session in a fresh Python process; its error output is raised if it fails."""

    def __init__(self, spec: dict):
        self.name = f"{spec['kind']} {spec['setting']['name']}"
        self._errors = tempfile.TemporaryFile(mode="w+")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "storm_hf.benchmarking.runner"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,
            text=True,
            env={**os.environ, **FEATURE_PROBE_ENV} if spec["kind"] == "features" else None,
        )
        self._ask(json.dumps(spec))

    def _ask(self, line: str) -> dict:
        self._process.stdin.write(line + "\n")
        self._process.stdin.flush()
        answer = self._process.stdout.readline()
        if not answer:
            self._process.wait()
            self._errors.seek(0)
            raise RuntimeError(f"The measurement {self.name} failed:\n{self._errors.read()[-4000:]}")
        return json.loads(answer)

    def run(self) -> dict:
        return self._ask("run")

    def finish(self) -> dict:
        result = self._ask("finish")
        self.close()
        return result

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._errors.close()


def measure_side_by_side(specs: dict[str, dict], repeats: int, isolated: bool, interleave: bool, log) -> dict:
    """`repeats` runs of every spec, {name: summary}. With `interleave` every session is open at once and the runs
    go round-robin, the order rotating each round; otherwise the sessions run one after another."""
    names, results = list(specs), {}
    with contextlib.ExitStack() as stack:

        def open_session(name: str):
            session = WorkerSession(specs[name]) if isolated else SESSIONS[specs[name]["kind"]](specs[name])
            if isolated:
                stack.callback(session.close)
            return session

        if interleave:
            sessions = {name: open_session(name) for name in names}
            for round_index in range(repeats):
                shift = round_index % len(names)
                for name in names[shift:] + names[:shift]:
                    log(f"  run {round_index + 1}/{repeats}: {name}")
                    sessions[name].run()
            return {name: sessions[name].finish() for name in names}
        for name in names:
            log(f"  {name}")
            session = open_session(name)
            for _ in range(repeats):
                session.run()
            results[name] = session.finish()
    return results


def main() -> None:
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything else written to stdout goes to the error output

    def answer(value: dict) -> None:
        protocol.write(json.dumps(value) + "\n")
        protocol.flush()

    spec = json.loads(sys.stdin.readline())
    session = SESSIONS[spec["kind"]](spec)
    answer({"ready": True})
    for line in sys.stdin:
        if line.strip() == "finish":
            answer(session.finish())
            return
        answer(session.run())


if __name__ == "__main__":
    main()
