"""Stage timing of one STORM call, from forward hooks on the real model (nothing is re-implemented here).

Stages, each ended with a device synchronisation:
    vision      `start()` -> the temporal encoder is called: generate's input setup, frame gathering, vision tower
    temporal    the temporal encoder: space-to-channel, projector, Mamba blocks, pooling and sampling
    prefill     -> the first forward returns: filling the placeholders, the LLM over the prompt, the first logits
    generation  -> `finish()`: the remaining new tokens, one cached decoding step each
"""

import time

from .memory import MemoryProbe

STAGES = ("vision", "temporal", "prefill", "generation")


class StageClock:
    """Seconds and peak memory of each stage of a run; `start()` before the call, `finish()` after it.

    After a run, `seconds[stage]`, `peak[stage]` (bytes in use at the stage's peak) and `peak_above_start[stage]`
    (that peak minus the bytes in use when the stage began) are filled for the stages the call went through, and
    `elapsed` holds the seconds from `start()` to the end of the last stage reached: the stages tile it exactly.
    """

    def __init__(self, model, memory: MemoryProbe):
        self.memory = memory
        self.seconds: dict[str, float] = {}
        self.peak: dict[str, int] = {}
        self.peak_above_start: dict[str, int] = {}
        self._next: str | None = None
        self._time = self._started = 0.0
        encoder = model.model.temporal_encoder
        self._handles = [
            encoder.register_forward_pre_hook(lambda *_: self._end("vision")),
            encoder.register_forward_hook(lambda *_: self._end("temporal")),
            model.register_forward_hook(lambda *_: self._end("prefill")),
        ]

    def start(self) -> None:
        self.seconds, self.peak, self.peak_above_start = {}, {}, {}
        self.memory.mark()
        self._time = self._started = time.perf_counter()
        self._next = STAGES[0]

    @property
    def elapsed(self) -> float:
        return self._time - self._started

    def finish(self) -> None:
        self._end("generation")

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()

    def _end(self, stage: str) -> None:
        if stage != self._next:  # later decoding steps call the same hooks
            return
        start, peak = self.memory.mark()  # synchronises the device first
        now = time.perf_counter()
        self.seconds[stage] = now - self._time
        self.peak[stage] = peak
        self.peak_above_start[stage] = peak - start
        self._time = now
        index = STAGES.index(stage) + 1
        self._next = STAGES[index] if index < len(STAGES) else None


def kv_cache_bytes(cache) -> int:
    """Bytes held by the keys and values of a transformers cache."""
    return sum(layer.keys.nbytes + layer.values.nbytes for layer in cache.layers)
