"""`storm-hf demo --stream`: play a fresh synthetic video into a streaming session one frame at a time, and ask at
several moments.

The video is a test-split flash-count scene (a shape that turns white on single frames), written to an MPEG-TS file
and read back frame by frame with the processor's incremental decoder, as a live recording would be. The question
"How many times does the ... flash?" is asked every `--ask-every` frames: its true answer grows as the video goes
on. Each answer is printed with the frames seen, the video tokens in the language model's cache, the time per frame
since the previous question and the time to answer. docs/streaming.md.
"""

from ..data.questions import COUNTS

STREAM_FPS = 8.0


def fresh_flash_scene(index: int, num_frames: int):
    """Test-split flash-count scene `index`: (question text, frames (T, H, W, 3), the frames that flash)."""
    from ..data.synthetic import make_sample

    question, frames = make_sample("test", index, num_frames=num_frames, question_types=("flash_count",))
    return question.text, frames, question.event_frames


def true_count(flash_frames: list[int], frames_seen: int) -> str:
    """The answer after `frames_seen` frames: how many flashes they hold."""
    count = sum(frame < frames_seen for frame in flash_frames)
    return COUNTS[count - 1] if count else "(no flash yet)"


def load_stream_model(folder):
    """The unidirectional model and its processor from `folder` (the shipped streaming model by default)."""
    from pathlib import Path

    from .. import StormForConditionalGeneration, StormProcessor
    from ..tiny.recipe import SHIPPED_STREAM_MODEL_DIR

    if folder is None:
        if not (SHIPPED_STREAM_MODEL_DIR / "config.json").is_file():
            raise FileNotFoundError(
                f"no streaming model is shipped at {SHIPPED_STREAM_MODEL_DIR} yet: train one with `storm-hf train-tiny "
                "--unidirectional --out RUN --ship`, or pass --model FOLDER (a STORM with a unidirectional temporal "
                "encoder)"
            )
        folder = SHIPPED_STREAM_MODEL_DIR
    model = StormForConditionalGeneration.from_pretrained(folder).eval()
    return model, StormProcessor.from_pretrained(folder), Path(folder)


def run_stream(args) -> int:
    import random
    import tempfile
    import time

    from ..data.synthetic import VIDEO_OPTIONS
    from ..data.video_writer import write_video
    from .demo import FRESH_INDEX_START

    if args.ask_every < 1:
        raise ValueError(f"--ask-every must be a positive number of frames, got {args.ask_every}")
    model, processor, folder = load_stream_model(args.model)
    session = model.start_stream(
        processor, max_video_tokens=args.max_video_tokens, temporal_sampling_stride=args.stride
    )
    index = args.index if args.index is not None else random.randrange(FRESH_INDEX_START, 2 * FRESH_INDEX_START)
    question, frames, flashes = fresh_flash_scene(index, args.frames)
    question = args.question or question
    temporal = model.config.temporal_config
    print(f"model:     {folder} (unidirectional, k={temporal.temporal_pool_size}, s={session.stride}, sampling keeps "
          f"the {session.slot} slot of each group, budget {args.max_video_tokens or 'none'})")
    print(f"video:     fresh synthetic video (test split, index {index}), {len(frames)} frames of "
          f"{frames.shape[2]}x{frames.shape[1]} at {STREAM_FPS:g} fps, read frame by frame as it is decoded")
    print(f"question:  {question}")
    print(f"flashes:   on frames {flashes}")
    print()
    print("frames | video tokens in cache | ms per frame | ms to answer | answer | true answer")
    with tempfile.TemporaryDirectory(prefix="storm-stream-demo-") as folder_name:
        path = write_video(f"{folder_name}/live.ts", frames, fps=STREAM_FPS, options=VIDEO_OPTIONS)
        spent, since = 0.0, 0
        for frame, seconds in processor.video_processor.stream_frames(path):
            start = time.perf_counter()
            session.add_frames(frame, timestamps=[seconds])
            spent, since = spent + time.perf_counter() - start, since + 1
            if session.frames_seen % args.ask_every and session.frames_seen != len(frames):
                continue
            start = time.perf_counter()
            answer = session.ask(question, max_new_tokens=4, do_sample=False).strip()
            answer_ms = 1000 * (time.perf_counter() - start)
            truth = true_count(flashes, session.frames_seen) if args.question is None else ""
            print(f"{session.frames_seen:6d} | {session.video_tokens:21d} | {1000 * spent / since:12.1f} | "
                  f"{answer_ms:12.1f} | {answer or '(empty)'} | {truth}")
            spent, since = 0.0, 0
    return 0
