"""Answer one question about every video in a folder, in batches, writing one JSON line per video.

    python examples/answer_folder.py videos/ "What happens in this video?" --out answers.jsonl --batch-size 8

Each line is {"video": path, "question": ..., "answer": ...}. Videos are decoded by data-loader workers
(`--workers`) while the model answers the previous batch; `--model` takes a STORM folder or Hub id (default: the
tiny model shipped with storm-hf, which only knows its synthetic 32 px scenes).
"""

import argparse
import json
from pathlib import Path

from tqdm.auto import tqdm
from transformers import pipeline
from transformers.pipelines.pt_utils import KeyDataset

import storm_hf  # noqa: F401  registers STORM with transformers' Auto classes and the video-text-to-text task
from storm_hf.tiny.recipe import SHIPPED_MODEL_DIR

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".webm", ".avi", ".ts", ".m4v"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of videos (searched recursively)")
    parser.add_argument("question", help="the question asked about every video")
    parser.add_argument("--out", type=Path, required=True, help="JSONL file to write")
    parser.add_argument("--model", default=str(SHIPPED_MODEL_DIR), help="STORM folder or Hub id")
    parser.add_argument("--frames", type=int, default=16, help="frames sampled per video (a multiple of k)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0, help="data-loader processes decoding videos")
    args = parser.parse_args()

    videos = sorted(path for path in args.folder.rglob("*") if path.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise SystemExit(f"No videos ({', '.join(sorted(VIDEO_SUFFIXES))}) under {args.folder}")
    chats = KeyDataset(
        [
            {"chat": [{"role": "user", "content": [{"type": "video", "path": str(video)},
                                                   {"type": "text", "text": args.question}]}]}
            for video in videos
        ],
        "chat",
    )
    pipe = pipeline("video-text-to-text", model=args.model)
    answers = pipe(
        chats, batch_size=args.batch_size, num_workers=args.workers, num_frames=args.frames, max_new_tokens=64,
        return_full_text=False,
    )
    with args.out.open("w") as out:
        for video, [result] in tqdm(zip(videos, answers), total=len(videos), unit="video"):
            row = {"video": str(video), "question": args.question, "answer": result["generated_text"].strip()}
            out.write(json.dumps(row) + "\n")
    print(f"wrote {len(videos)} answers to {args.out}")


if __name__ == "__main__":
    main()
