"""Streaming against re-running the offline model, side by side in one process: what each new frame costs as a
stream grows, the memory it holds, and the time to answer a question at each length.

One model (random weights, a unidirectional temporal encoder keeping the last slot of each sampling group) serves
both paths. The stream takes frames one at a time through `StormStreamingSession` under a budget of video tokens;
each frame is timed. At each checkpoint length N the stream answers a question (timed), then the offline model
answers the same question from scratch: the processor prepares the N frames, the vision tower and the temporal
encoder run over the whole clip (`get_video_features`), and the language model reads a prompt holding the same kept
slots the stream's cache holds (the newest that fit the budget), prefill and generation. Frames come from a test
video (decoded once; its first frames are cycled for longer streams: the cost of a frame does not depend on what it
shows).
"""

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..modeling.modeling_storm import StormForConditionalGeneration
from ..processors.processing_storm import StormProcessor
from ..tokenization import build_tokenizer
from .memory import MemoryProbe
from .report import results_header
from .scales import SCALES, SETTINGS, build_config, shape_summary
from .stages import kv_cache_bytes
from .tokens import video_processor_for
from .video import write_test_video

QUESTION = "What is happening in the video right now?"
SETTING = "k4"  # temporal pooling k = 4, as the paper's trained models
WARMUP_FRAMES = 8
WINDOW = 64  # frames before a checkpoint whose per-frame times it reports
POOL_FRAMES = 64  # decoded frames cycled through the stream


def build_stream_model(scale: str, device: str, dtype: str, stride: int, threads: int | None = None):
    """(model, processor) at `scale`: random weights, unidirectional Mamba blocks, k = 4, a small offline tokenizer."""
    if threads:
        torch.set_num_threads(threads)
    config = build_config(SCALES[scale], SETTINGS[SETTING])
    config.temporal_config.bidirectional = False
    config.temporal_config.temporal_sampling_slot = "last"
    config.temporal_config.temporal_sampling_stride = stride
    tokenizer = build_tokenizer([QUESTION, "The end."], vocab_size=300)
    processor = StormProcessor(video_processor_for(config), tokenizer)
    config.video_token_id, config.image_token_id = processor.video_token_id, processor.image_token_id
    torch.manual_seed(0)
    with torch.device(device):
        model = StormForConditionalGeneration._from_config(config, dtype=getattr(torch, dtype)).eval()
    # Random weights: never stop early, always generate max_new_tokens.
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model, processor


def decode_pool(processor, video: Path, count: int) -> list:
    """The first `count` frames of `video` (RGB arrays), decoded once."""
    frames = []
    for frame, _ in processor.video_processor.stream_frames(video):
        frames.append(frame)
        if len(frames) == count:
            break
    return frames


def _summary(milliseconds: list[float]) -> dict:
    ordered = sorted(milliseconds)
    return {
        "mean": statistics.fmean(ordered),
        "p50": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        "max": ordered[-1],
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def offline_answer(model, processor, session, frames: list, new_tokens: int) -> dict:
    """Answer from scratch on the whole clip, with the prompt holding the kept slots `session`'s cache holds."""
    device = model.device
    timings, start = {}, time.perf_counter()
    prepare = processor.video_processor.preprocess_frames  # a chunk at a time: the raw frames are large
    pixels = torch.cat([prepare(frames[i : i + WINDOW]) for i in range(0, len(frames), WINDOW)]).to(device)
    pool = model.config.temporal_config.temporal_pool_size
    if len(pixels) % pool:  # the processor pads a clip to a multiple of k with copies of its last frame
        pixels = torch.cat([pixels, pixels[-1:].expand(pool - len(pixels) % pool, -1, -1, -1)])
    _sync(device)
    timings["preprocess"] = time.perf_counter() - start
    start = time.perf_counter()
    features = model.get_video_features(pixels[None]).pooler_output[0]  # (kept slots * S*S, D)
    _sync(device)
    timings["vision_and_temporal"] = time.perf_counter() - start
    start = time.perf_counter()
    slots = features.view(-1, session.tokens_per_slot, features.shape[-1])
    if session.max_slots is not None:
        slots = slots[-session.max_slots :]  # the newest slots that fit the budget, as in the stream's cache
    before, after = session.prompt_ids(QUESTION)
    block = [processor.video_token_id] * session.tokens_per_slot + [processor.frame_separator_id]
    ids = torch.tensor([before + block * len(slots) + after], device=device)
    embeds = model.get_input_embeddings()(ids)
    embeds[ids == processor.video_token_id] = slots.reshape(-1, slots.shape[-1]).to(embeds.dtype)
    model.generate(inputs_embeds=embeds, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                   do_sample=False)
    _sync(device)
    timings["generate"] = time.perf_counter() - start
    timings["total"] = sum(timings.values())
    return {"seconds": timings, "prompt_tokens": ids.shape[1], "video_tokens": len(slots) * session.tokens_per_slot}


def run_stream(
    scale: str,
    frames: list[int],
    max_video_tokens: int | None = 8192,
    stride: int = 1,
    new_tokens: int = 16,
    device: str | None = None,
    dtype: str | None = None,
    video: str | None = None,
    threads: int | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Stream up to max(frames) frames, measuring at each length in `frames` (see the module docstring)."""
    if scale not in SCALES:
        raise ValueError(f"Unknown scale {scale!r}; choose one of {', '.join(SCALES)}.")
    if not frames or any(count < WARMUP_FRAMES for count in frames):
        raise ValueError(f"--frames must be stream lengths of at least {WARMUP_FRAMES} frames, got {frames}.")
    frames = sorted(set(frames))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype or SCALES[scale].dtype
    model, processor = build_stream_model(scale, device, dtype, stride, threads)
    probe = MemoryProbe(model.device)
    load_start, started = os.getloadavg(), time.perf_counter()

    with tempfile.TemporaryDirectory() as folder:
        source = Path(video) if video else write_test_video(Path(folder) / "test.mp4", POOL_FRAMES / 30 + 1)
        pool = decode_pool(processor, source, POOL_FRAMES)
    log(f"warm-up on {WARMUP_FRAMES} frames")
    warmup = model.start_stream(processor, max_video_tokens=max_video_tokens)
    for index in range(WARMUP_FRAMES):
        warmup.add_frames(pool[index % len(pool)])
    warmup.ask(QUESTION, max_new_tokens=2)
    offline_answer(model, processor, warmup, [pool[i % len(pool)] for i in range(WARMUP_FRAMES)], 2)
    del warmup

    before_stream = probe.now()  # the model, the decoded frames and what the warm-up left allocated
    session = model.start_stream(processor, max_video_tokens=max_video_tokens)
    per_frame_ms, checkpoints = [], []
    for target in frames:
        log(f"streaming to {target} frames")
        while session.frames_seen < target:
            frame = pool[session.frames_seen % len(pool)]
            _sync(model.device)
            start = time.perf_counter()
            session.add_frames(frame)
            _sync(model.device)
            per_frame_ms.append(1000 * (time.perf_counter() - start))
        stream_memory = probe.now()
        start = time.perf_counter()
        session.ask(QUESTION, max_new_tokens=new_tokens)
        _sync(model.device)
        answer_seconds = time.perf_counter() - start
        log(f"  offline re-run on {target} frames")
        probe.mark()
        offline = offline_answer(model, processor, session, [pool[i % len(pool)] for i in range(target)], new_tokens)
        offline["peak_above_stream_bytes"] = probe.mark()[1] - stream_memory
        checkpoints.append(
            {
                "frames": target,
                "stream": {
                    "ms_per_frame": _summary(per_frame_ms[-min(WINDOW, target) :]),
                    "answer_seconds": answer_seconds,
                    "video_tokens": session.video_tokens,
                    "cache_tokens": session.cache_length,
                    "kv_cache_bytes": kv_cache_bytes(session.kv_cache),
                    "temporal_state_bytes": session.temporal_state_bytes,
                    "memory_above_start_bytes": stream_memory - before_stream,
                },
                "offline": offline,
                "offline_vs_stream_answer": offline["seconds"]["total"] / answer_seconds,
            }
        )
        log(f"  stream {checkpoints[-1]['stream']['ms_per_frame']['mean']:.1f} ms/frame, answer "
            f"{answer_seconds:.2f} s; offline {offline['seconds']['total']:.2f} s")

    config = model.config
    return {
        **results_header("stream", scale, device, dtype, load_start),
        "shapes": shape_summary(config),
        "options": {
            "frames": frames,
            "max_video_tokens": max_video_tokens,
            "temporal_pool_size": config.temporal_config.temporal_pool_size,
            "temporal_sampling_stride": stride,
            "temporal_sampling_slot": "last",
            "new_tokens": new_tokens,
            "window_frames": WINDOW,
            "video": video or f"synthetic 640x360 30 fps H.264, its first {POOL_FRAMES} frames cycled",
        },
        "tokens_per_slot": session.tokens_per_slot,
        "checkpoints": checkpoints,
        "ms_per_frame": per_frame_ms,
        "wall_seconds": time.perf_counter() - started,
    }
