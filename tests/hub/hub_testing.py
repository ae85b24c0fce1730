"""Shared by the Hub tests: the tiny tokenizer's corpus, the question, and a video to ask about."""

import numpy as np

CORPUS = [
    "What happens in this video? A square moves to the right, then it stops.",
    "Which colour appears first? red green blue left right up down one two three",
]
QUESTION = "What happens in this video?"


def moving_square(num_frames: int = 24, side: int = 32) -> np.ndarray:
    frames = np.zeros((num_frames, side, side, 3), dtype=np.uint8)
    for index in range(num_frames):
        column = index % (side - 8)
        frames[index, 12:20, column : column + 8] = (230, 40, 40)
    return frames


def chat_about(video) -> list[dict]:
    return [{"role": "user", "content": [{"type": "video", "path": str(video)}, {"type": "text", "text": QUESTION}]}]


def greedy_answer(model, processor, video, max_new_tokens: int, **processor_kwargs) -> str:
    """The answer to QUESTION about `video`, by greedy generation straight from the model."""
    import torch

    inputs = processor.apply_chat_template(
        chat_about(video), add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
        processor_kwargs=processor_kwargs,
    )
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return processor.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
