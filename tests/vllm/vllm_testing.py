"""Shared by the vLLM tests: the tiny STORM they serve, its videos, and transformers' answers to compare with."""

import numpy as np
import pytest
import torch

from storm_hf.data.video_writer import write_video

def require_vllm() -> None:
    """Skip the calling test module where vLLM is not installed. (This `vllm` folder of tests is importable as a
    namespace package named `vllm` then, so ask for a real module.)"""
    pytest.importorskip("vllm.entrypoints.llm", reason="vLLM is not installed (see .ci/vllm)")


CORPUS = [
    "What happens in this video? A square moves to the right, then it stops.",
    "Which colour is the square? red green blue yellow left right up down one two three",
]
QUESTION = "Which colour is the square?"
# The text model's head_dim is 64 (vLLM's CPU attention does not take the 16 of the other tests' tiny LLM).
TEXT = {"hidden_size": 128, "intermediate_size": 256, "num_attention_heads": 2, "num_key_value_heads": 1}
MAX_MODEL_LEN = 512
NEW_TOKENS = 12
# name: (square colour, frames). Different colours and lengths, so that answers depend on the video.
VIDEOS = {
    "red": ((230, 40, 40), 24),
    "blue": ((40, 60, 230), 24),
    "green": ((40, 200, 60), 40),
    "yellow": ((230, 220, 40), 12),
}


def square_video(colour, num_frames: int, side: int = 32) -> np.ndarray:
    """A square of `colour` sliding to the right over a dark background, (T, side, side, 3) uint8."""
    frames = np.full((num_frames, side, side, 3), 20, dtype=np.uint8)
    for index in range(num_frames):
        column = index % (side // 2)
        frames[index, side // 4 : 3 * side // 4, column : column + side // 2] = colour
    return frames


def write_videos(folder) -> dict:
    return {name: write_video(folder / f"{name}.mp4", square_video(*spec), fps=8) for name, spec in VIDEOS.items()}


def messages(video_block: dict) -> list[dict]:
    return [{"role": "user", "content": [video_block, {"type": "text", "text": QUESTION}]}]


class TransformersReference:
    """Greedy answers and first-step logits of the Hub folder under transformers' `generate`."""

    def __init__(self, model, processor):
        self.model, self.processor = model, processor

    def inputs(self, video, settings: dict | None = None):
        block = {"type": "video", "path": str(video)} if not isinstance(video, np.ndarray) else {"type": "video", "video": video}
        return self.processor.apply_chat_template(
            messages(block),
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs=dict(settings or {}),  # apply_chat_template adds return_tensors to the dict it gets
        )

    @torch.no_grad()
    def answer(self, video, settings: dict | None = None) -> tuple[list[int], list[int]]:
        """(prompt ids, greedy answer ids)."""
        inputs = self.inputs(video, settings)
        output = self.model.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False)
        prompt = inputs["input_ids"][0].tolist()
        return prompt, output[0, len(prompt) :].tolist()

    @torch.no_grad()
    def first_logprobs(self, video, settings: dict | None = None) -> torch.Tensor:
        """(vocab,) log-probabilities of the first answer token."""
        logits = self.model(**self.inputs(video, settings)).logits[0, -1]
        return torch.log_softmax(logits.float(), dim=-1)
