"""`storm-hf demo`: ask the shipped tiny STORM a question about a video through `pipeline("video-text-to-text")`.

Without `--video` it renders a fresh synthetic test video (a test-split index beyond those the docs evaluate) and
prints the true answer beside the model's. What the tiny model can and cannot understand: docs/shipped-model.md.
`--stream` plays a fresh video into a streaming session instead (the shipped unidirectional model; `stream_demo`).
"""

import argparse

# Fresh demo videos come from test-split indices at and above this one; the docs evaluate indices below it.
FRESH_INDEX_START = 1_000_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument(
        "--model",
        help="STORM folder or Hub id (default: the tiny model shipped with storm-hf; with --stream, the shipped "
        "unidirectional one)",
    )
    parser.add_argument(
        "--stream",
        action="store_true",
        help="play a fresh synthetic video into a streaming session frame by frame, asking every --ask-every frames",
    )
    parser.add_argument("--ask-every", type=int, default=4, help="with --stream: frames between questions")
    parser.add_argument("--video", help="a video file to ask about (default: render a fresh synthetic one)")
    parser.add_argument("--question", help="the question (required with --video; with --stream, replaces the default)")
    parser.add_argument("--index", type=int, help="test-split index of the synthetic video (default: a random one)")
    parser.add_argument("--frames", type=int, default=16, help="frames sampled from the video, a multiple of k")
    parser.add_argument(
        "--stride", type=int, help="test-time temporal sampling stride s (default: 1, or what --max-video-tokens picks)"
    )
    parser.add_argument(
        "--max-video-tokens",
        type=int,
        help="video token budget: the smallest stride whose tokens fit it is chosen (an explicit --stride wins); "
        "with --stream, the session's budget (the oldest slots are dropped)",
    )


def _fresh_video(index: int, folder, num_frames: int):
    """Render test-split sample `index` into `folder`; return (path, question, true answer)."""
    from storm_hf.data.synthetic import VIDEO_OPTIONS, make_sample
    from storm_hf.data.video_writer import write_video

    question, frames = make_sample("test", index, num_frames=num_frames)
    path = write_video(f"{folder}/test-{index:08d}.mp4", frames, fps=8.0, options=VIDEO_OPTIONS)
    return path, question.text, question.answer


def run(args: argparse.Namespace) -> int:
    if args.stream:
        if args.video is not None:
            raise ValueError("--stream plays a fresh synthetic video; it takes no --video")
        from .stream_demo import run_stream

        return run_stream(args)

    import random
    import tempfile
    import time
    from pathlib import Path

    from transformers import pipeline

    from storm_hf.tiny.recipe import SHIPPED_MODEL_DIR

    if args.video is not None and not args.question:
        raise ValueError('--video needs --question "..." (what to ask about the video)')
    if args.video is not None and not Path(args.video).is_file():
        raise FileNotFoundError(f"--video {args.video}: no such file (give the path of a video file, e.g. an .mp4)")
    model = args.model or str(SHIPPED_MODEL_DIR)
    if args.model is None and not (SHIPPED_MODEL_DIR / "config.json").is_file():
        raise FileNotFoundError(
            f"the shipped model is missing from {SHIPPED_MODEL_DIR}: reinstall storm-hf, or pass --model FOLDER"
        )

    with tempfile.TemporaryDirectory(prefix="storm-demo-") as folder:
        truth = None
        if args.video is None:
            index = args.index if args.index is not None else random.randrange(FRESH_INDEX_START, 2 * FRESH_INDEX_START)
            video, question, truth = _fresh_video(index, folder, args.frames)
            source = f"fresh synthetic video (test split, index {index}), {args.frames} frames of 32x32 at 8 fps"
            if args.question:
                question, truth = args.question, None
        else:
            video, question, source = args.video, args.question, args.video

        start = time.perf_counter()
        pipe = pipeline("video-text-to-text", model=model)
        load_seconds = time.perf_counter() - start
        settings = {"num_frames": args.frames}
        if args.stride is not None:
            settings["temporal_sampling_stride"] = args.stride
        if args.max_video_tokens is not None:
            settings["max_video_tokens"] = args.max_video_tokens
        start = time.perf_counter()
        answer = pipe(text=question, videos=str(video), return_full_text=False, **settings)[0]["generated_text"]
        answer_seconds = time.perf_counter() - start

        video_processor = pipe.processor.video_processor
        # the same sampling as the pipeline's: its metadata says which frames, which stride and how many tokens
        metadata = video_processor(videos=[str(video)], return_metadata=True, **settings)["video_metadata"][0]
        used = metadata.frames_indices
        k = video_processor.temporal_pool_size
        full = len(used) * video_processor.tokens_per_frame

    print(f"video:        {source}")
    print(f"question:     {question}")
    print(f"answer:       {answer.strip()}")
    if truth is not None:
        print(f"true answer:  {truth} ({'right' if answer.strip().lower() == truth else 'wrong'})")
    shown = used if len(used) <= 16 else [*used[:8], "...", *used[-4:]]
    print(f"frames used:  {len(used)} of {metadata.total_num_frames}: [{', '.join(str(i) for i in shown)}]")
    chosen = ""
    if args.max_video_tokens is not None and args.stride is None:
        chosen = f", the smallest stride within --max-video-tokens {args.max_video_tokens}"
    print(
        f"video tokens: {metadata.num_video_tokens} reached the LLM (temporal pooling k={k}, sampling "
        f"s={metadata.temporal_sampling_stride}{chosen}) vs {full} without reduction ({len(used)} frames x "
        f"{video_processor.tokens_per_frame} tokens)"
    )
    print(f"time:         {answer_seconds:.2f} s to answer ({load_seconds:.2f} s to load the model)")
    return 0
