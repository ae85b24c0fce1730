"""Ask questions about one video.

    python examples/video_qa.py clip.mp4 "What happens in this video?" "Which colour appears first?"

`--model` takes a STORM folder or Hub id; the default is the tiny model that ships with storm-hf, which only knows
storm-hf's synthetic 32 px scenes (make some with `storm-hf make-data data --n 4 --split test`). A folder exported
with its code also loads where storm-hf is not installed: `pipeline(..., trust_remote_code=True)`.
"""

import argparse

from transformers import pipeline

import storm_hf  # noqa: F401  registers STORM with transformers' Auto classes and the video-text-to-text task
from storm_hf.tiny.recipe import SHIPPED_MODEL_DIR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", help="a video file (or URL)")
    parser.add_argument("questions", nargs="+", help="one or more questions")
    parser.add_argument("--model", default=str(SHIPPED_MODEL_DIR), help="STORM folder or Hub id")
    parser.add_argument("--frames", type=int, default=16, help="frames sampled from the video (a multiple of k)")
    args = parser.parse_args()

    pipe = pipeline("video-text-to-text", model=args.model)
    chats = [
        [{"role": "user", "content": [{"type": "video", "path": args.video}, {"type": "text", "text": question}]}]
        for question in args.questions
    ]
    results = pipe(chats, num_frames=args.frames, max_new_tokens=64, return_full_text=False, batch_size=len(chats))
    for question, [result] in zip(args.questions, results):
        print(f"Q: {question}\nA: {result['generated_text'].strip()}")


if __name__ == "__main__":
    main()
