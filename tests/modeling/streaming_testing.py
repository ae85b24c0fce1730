"""Helpers for the streaming tests: a tiny unidirectional STORM with its processor, coloured test videos, and the
offline answers a stream must reproduce."""

import numpy as np
import torch

from storm_hf import StormForConditionalGeneration, StormProcessor, StormVideoProcessor
from storm_hf.tokenization import build_tokenizer

QUESTION = "What happens at the end?"
CORPUS = [
    "Describe the video in detail.\nWhat happens at the end?",
    "A red square moves to the right, then a blue one appears.\n\nThe end.",
]
POOL = 4  # k
ANSWER = {"max_new_tokens": 6, "do_sample": False}


def build_processor() -> StormProcessor:
    tokenizer = build_tokenizer(CORPUS, vocab_size=300)
    video_processor = StormVideoProcessor(size={"height": 32, "width": 32}, patch_size=8, temporal_pool_size=POOL)
    return StormProcessor(video_processor, tokenizer)


def build_model(config_builder, processor, text=None, seed=0, **temporal) -> StormForConditionalGeneration:
    """A tiny STORM with a unidirectional temporal encoder keeping the last slot of each sampling group."""
    tokenizer = processor.tokenizer
    config = config_builder(
        text={"vocab_size": len(tokenizer), **(text or {})},
        temporal_config={"bidirectional": False, "temporal_sampling_slot": "last", **temporal},
    )
    config.video_token_id, config.image_token_id = processor.video_token_id, processor.image_token_id
    torch.manual_seed(seed)
    model = StormForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def coloured_video(num_frames: int, colour, seed: int = 0) -> np.ndarray:
    """(T, 32, 32, 3) uint8: a square of `colour` gliding right over faint noise."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 40, (num_frames, 32, 32, 3), dtype=np.uint8)
    for index in range(num_frames):
        left = index * 24 // max(num_frames - 1, 1)
        frames[index, 10:18, left : left + 8] = colour
    return frames


def prompt_text(processor, question: str = QUESTION) -> str:
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def offline_inputs(processor, frames, question: str = QUESTION, stride: int = 1):
    """The processor's inputs for the whole clip (padded to a multiple of k with copies of its last frame)."""
    return processor(text=prompt_text(processor, question), videos=frames, temporal_sampling_stride=stride,
                     return_tensors="pt")


@torch.no_grad()
def offline_answer(model, processor, frames, question: str = QUESTION, stride: int = 1, **generate_kwargs):
    """The offline model's answer ids (1, new) on the clip `frames`."""
    inputs = offline_inputs(processor, frames, question, stride)
    out = model.generate(**inputs, **{**ANSWER, **generate_kwargs})
    return out[:, inputs["input_ids"].shape[1] :]


def stream_frames(session, frames, sizes) -> None:
    """Add `frames` to `session` in pieces of `sizes` frames (cycled)."""
    start, turn = 0, 0
    while start < len(frames):
        stop = min(start + sizes[turn % len(sizes)], len(frames))
        session.add_frames(frames[start:stop])
        start, turn = stop, turn + 1


class EmbedsRecorder:
    """Records the `inputs_embeds` of every language-model call (a forward pre-hook on the real module)."""

    def __init__(self, model):
        self.calls = []
        self._handle = model.model.language_model.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module, args, kwargs):
        if kwargs.get("inputs_embeds") is not None:
            self.calls.append(kwargs["inputs_embeds"].detach().clone())

    def remove(self) -> None:
        self._handle.remove()


def first_answer_logits(model, answer):
    """`answer()`'s result and the logits of the first token it generated, read by a forward hook on `model`."""
    logits = []
    handle = model.register_forward_hook(lambda module, args, output: logits.append(output.logits[0, -1]))
    try:
        result = answer()
    finally:
        handle.remove()
    return result, logits[0]
