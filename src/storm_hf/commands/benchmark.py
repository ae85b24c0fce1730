"""`storm-hf benchmark NAME`: measurement suites. `e2e`: end-to-end latency, visual tokens and memory of STORM's
token-reduction settings side by side (docs/performance-e2e.md). `stream`: a streaming session's cost per new frame,
memory and time to answer as the stream grows, against re-running the offline model (docs/streaming.md)."""

import argparse


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def _add_e2e_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scale",
        default="cpu",
        help="model shapes: 'paper' (SigLIP-So400m/14 448 px + Qwen2-7B shape, bf16, for a GPU), 'cpu' (a small "
        "SigLIP-style tower at 224 px + Qwen2-0.5B shape, bf16) or 'tiny' (seconds, for tests); default cpu",
    )
    parser.add_argument(
        "--frames", type=_positive_int, nargs="+", default=[32, 64, 128], help="clip lengths (default 32 64 128)"
    )
    parser.add_argument(
        "--settings",
        nargs="+",
        default=None,
        help="settings to compare (default all): baseline (no Mamba, linear projector), storm (no reduction), k4 "
        "(temporal pooling k=4), k4-s2 (k=4 + test-time sampling s=2), k4-spatial4 (k=4 + spatial pooling 4x)",
    )
    parser.add_argument(
        "--repeats", type=_positive_int, default=3, help="timed runs per measurement, after a warm-up (default 3)"
    )
    parser.add_argument("--new-tokens", type=_positive_int, default=16, help="tokens generated per run (default 16)")
    parser.add_argument(
        "--memory-frames",
        type=_positive_int,
        nargs="*",
        default=[32, 256],
        help="clip lengths of the feature-memory probe (vision stage and temporal encoder only; default 32 256)",
    )
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), help="default: the scale's dtype")
    parser.add_argument("--vision-config", help="vision tower config replacing the scale's: a JSON file or inline JSON")
    parser.add_argument("--text-config", help="LLM config replacing the scale's: a JSON file or inline JSON")
    parser.add_argument("--video", help="a video file to decode (default: a synthetic 640x360 30 fps clip)")
    parser.add_argument("--video-seconds", type=float, default=30.0, help="length of the synthetic clip (default 30)")
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="CPU threads per measurement (default: torch's, one per core); 1 gives steadier figures on a machine "
        "shared with other work",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="measure everything in this process instead of a fresh process per measurement (faster to start; "
        "peak memory then also counts what earlier measurements left behind)",
    )
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="run the settings one after another (the default on CUDA, where several models may not fit at once) "
        "instead of keeping them all loaded and taking their runs in turn (the default on the CPU)",
    )
    parser.add_argument("--out", default="benchmarks/results", help="output folder (default benchmarks/results)")


def _run_e2e(args: argparse.Namespace) -> int:
    from storm_hf.benchmarking.e2e import run_e2e
    from storm_hf.benchmarking.report import memory_table, paper_table, runs_table, write_results
    from storm_hf.benchmarking.scales import SETTINGS, load_sub_config

    results = run_e2e(
        args.scale,
        frames=args.frames,
        settings=args.settings or list(SETTINGS),
        repeats=args.repeats,
        new_tokens=args.new_tokens,
        memory_frames=args.memory_frames,
        device=args.device,
        dtype=args.dtype,
        vision=load_sub_config(args.vision_config, "vision_config") if args.vision_config else None,
        text=load_sub_config(args.text_config, "text_config") if args.text_config else None,
        video=args.video,
        video_seconds=args.video_seconds,
        threads=args.threads,
        isolate=not args.in_process,
        interleave=False if args.sequential else None,
    )
    json_path, png_path = write_results(results, args.out)
    print(runs_table(results), paper_table(results), memory_table(results), sep="\n\n")
    print(f"\nwrote {json_path} and {png_path}")
    return 0


def _add_stream_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scale",
        default="cpu",
        help="model shapes, as for e2e: 'paper' (for a GPU), 'cpu' or 'tiny' (seconds, for tests); default cpu",
    )
    parser.add_argument(
        "--frames",
        type=_positive_int,
        nargs="+",
        default=[128, 512, 2048],
        help="stream lengths at which to ask and compare with the offline re-run (default 128 512 2048)",
    )
    parser.add_argument(
        "--max-video-tokens",
        type=int,
        default=8192,
        help="the session's budget of video tokens, 0 for none (default 8192: the paper's 8K-token LLM budget)",
    )
    parser.add_argument("--stride", type=_positive_int, default=1, help="test-time sampling stride s (default 1)")
    parser.add_argument("--new-tokens", type=_positive_int, default=16, help="tokens per answer (default 16)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), help="default: the scale's dtype")
    parser.add_argument("--video", help="a video file whose first 64 frames are streamed (default: a synthetic clip)")
    parser.add_argument(
        "--threads", type=_positive_int, default=None, help="CPU threads (default: torch's, one per core)"
    )
    parser.add_argument("--out", default="benchmarks/results", help="output folder (default benchmarks/results)")


def _run_stream(args: argparse.Namespace) -> int:
    from storm_hf.benchmarking.report import write_results
    from storm_hf.benchmarking.stream import run_stream
    from storm_hf.benchmarking.stream_report import plot_stream, stream_table

    results = run_stream(
        args.scale,
        frames=args.frames,
        max_video_tokens=args.max_video_tokens or None,
        stride=args.stride,
        new_tokens=args.new_tokens,
        device=args.device,
        dtype=args.dtype,
        video=args.video,
        threads=args.threads,
    )
    json_path, png_path = write_results(results, args.out, plot_stream)
    print(stream_table(results))
    print(f"\nwrote {json_path} and {png_path}")
    return 0


# name -> (one-line help, add_arguments, run)
BENCHMARKS = {
    "e2e": (
        "End-to-end latency, visual tokens and memory of every token-reduction setting",
        _add_e2e_arguments,
        _run_e2e,
    ),
    "stream": (
        "A streaming session's cost per new frame, memory and time to answer, against re-running the offline model",
        _add_stream_arguments,
        _run_stream,
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    subparsers = parser.add_subparsers(dest="benchmark", required=True, metavar="NAME")
    for name, (help_text, add, _) in BENCHMARKS.items():
        add(subparsers.add_parser(name, help=help_text, description=help_text))


def requirements(args: argparse.Namespace) -> list[str]:
    return ["matplotlib"]  # the results plot


def run(args: argparse.Namespace) -> int:
    return BENCHMARKS[args.benchmark][2](args)
