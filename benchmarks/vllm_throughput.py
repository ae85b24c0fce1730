"""Throughput and latency of N concurrent video questions: vLLM (with the STORM plugin) against transformers'
`generate`, one request at a time and batched, on the same STORM Hub folder, in one run.

    .ci/vllm                                   # or any environment with vLLM and storm-hf installed
    .venv-vllm/bin/python benchmarks/vllm_throughput.py --requests 16 --frames 32 --new-tokens 32

Every request asks about its own video file (decoded and sampled by StormProcessor in both engines) and generates
exactly `--new-tokens` tokens greedily. The model has random weights (speed does not depend on them): a small
SigLIP-style tower and a Qwen2-style LLM (`--hidden`, `--layers`). vLLM runs its engine in this process.
Writes benchmarks/results/vllm-throughput-<device>.json; see docs/vllm.md.
"""

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

QUESTION = "Which colour is the square, and where does it go?"


def _config(args):
    from storm_hf import StormConfig

    return StormConfig(
        vision_config={"model_type": "siglip_vision_model", "hidden_size": 128, "intermediate_size": 256,
                       "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 64, "patch_size": 8,
                       "vision_use_head": False},
        text_config={"model_type": "qwen2", "hidden_size": args.hidden, "intermediate_size": 4 * args.hidden,
                     "num_hidden_layers": args.layers, "num_attention_heads": args.hidden // 64,
                     "num_key_value_heads": max(args.hidden // 256, 1), "max_position_embeddings": 4096},
        temporal_config={"d_state": 16},
    )  # fmt: skip


def _videos(folder: Path, count: int, frames: int) -> list[Path]:
    from storm_hf.data.video_writer import write_video

    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        colour = rng.integers(40, 255, 3)
        clip = np.full((frames, 96, 96, 3), 20, dtype=np.uint8)
        for t in range(frames):
            clip[t, 24:72, t % 48 : t % 48 + 48] = colour
        paths.append(write_video(folder / f"video{index}.mp4", clip, fps=8))
    return paths


def _cpu_model() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor()


def _transformers_runs(folder: Path, videos: list[Path], args) -> dict:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(folder).eval()
    processor = AutoProcessor.from_pretrained(folder)
    generate = {"max_new_tokens": args.new_tokens, "min_new_tokens": args.new_tokens, "do_sample": False}

    def inputs(batch):
        chats = [[{"role": "user", "content": [{"type": "video", "path": str(v)}, {"type": "text", "text": QUESTION}]}]
                 for v in batch]  # fmt: skip
        return processor.apply_chat_template(chats, add_generation_prompt=True, tokenize=True, return_dict=True,
                                             return_tensors="pt", processor_kwargs={"num_frames": args.frames})

    with torch.inference_mode():
        model.generate(**inputs(videos[:1]), **generate)  # warm-up
        latencies = []
        start = time.perf_counter()
        for video in videos:
            begin = time.perf_counter()
            model.generate(**inputs([video]), **generate)
            latencies.append(time.perf_counter() - begin)
        sequential = time.perf_counter() - start
        start = time.perf_counter()
        model.generate(**inputs(videos), **generate)
        batched = time.perf_counter() - start
    return {
        "transformers, one at a time": {"seconds": sequential, "latency_mean": float(np.mean(latencies)),
                                        "latency_max": float(np.max(latencies))},
        "transformers, one batch": {"seconds": batched, "latency_mean": batched, "latency_max": batched},
    }  # fmt: skip


def _vllm_runs(folder: Path, videos: list[Path], args) -> dict:
    from transformers import AutoProcessor
    from vllm import LLM, SamplingParams

    prompt = AutoProcessor.from_pretrained(folder).apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": QUESTION}]}],
        add_generation_prompt=True, tokenize=False,
    )  # fmt: skip
    llm = LLM(model=str(folder), max_model_len=4096, dtype="float32", distributed_executor_backend="uni",
              limit_mm_per_prompt={"video": 1, "image": 0}, mm_processor_cache_gb=0)  # fmt: skip
    params = SamplingParams(max_tokens=args.new_tokens, temperature=0.0, ignore_eos=True)
    requests = [{"prompt": prompt, "multi_modal_data": {"video": str(v)}, "mm_processor_kwargs": {"num_frames": args.frames}}
                for v in videos]  # fmt: skip
    try:
        llm.generate(requests[:1], params, use_tqdm=False)  # warm-up
        begin = time.perf_counter()
        llm.generate(requests[:1], params, use_tqdm=False)
        single = time.perf_counter() - begin
        begin = time.perf_counter()
        outputs = llm.generate(requests, params, use_tqdm=False)
        concurrent = time.perf_counter() - begin
    finally:
        llm.llm_engine.engine_core.shutdown()
    assert all(len(o.outputs[0].token_ids) == args.new_tokens for o in outputs)
    return {"vLLM, all at once": {"seconds": concurrent, "latency_mean": concurrent, "latency_max": concurrent,
                                  "single_request_latency": single}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=16, help="concurrent video questions (default 16)")
    parser.add_argument("--frames", type=int, default=32, help="frames per video, a multiple of 4 (default 32)")
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens generated per question (default 32)")
    parser.add_argument("--hidden", type=int, default=256, help="LLM width, a multiple of 64 (default 256)")
    parser.add_argument("--layers", type=int, default=4, help="LLM layers (default 4)")
    parser.add_argument("--out", default="benchmarks/results", help="folder of the JSON result")
    args = parser.parse_args()

    from storm_hf.benchmarking.hub_folder import write_random_storm

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_random_storm(Path(tmp) / "storm", _config(args), [QUESTION, "red green blue left right"])
        videos = _videos(Path(tmp), args.requests, args.frames)
        runs = {**_transformers_runs(folder, videos, args), **_vllm_runs(folder, videos, args)}
    for run in runs.values():
        run["requests_per_second"] = args.requests / run["seconds"]
        run["tokens_per_second"] = args.requests * args.new_tokens / run["seconds"]
    result = {"settings": vars(args), "cpu": _cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
              "runs": runs}  # fmt: skip
    out = Path(args.out) / "vllm-throughput-cpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'engine':<30} {'seconds':>8} {'req/s':>7} {'tok/s':>7} {'latency mean':>13}")
    for name, run in runs.items():
        print(f"{name:<30} {run['seconds']:8.2f} {run['requests_per_second']:7.2f} {run['tokens_per_second']:7.1f} "
              f"{run['latency_mean']:13.2f}")  # fmt: skip
    print(f"vLLM single-request latency: {runs['vLLM, all at once']['single_request_latency']:.2f} s; written {out}")


if __name__ == "__main__":
    main()
