"""Streaming video into STORM: a session that takes frames as they arrive and answers questions at any moment.

```python
session = model.start_stream(processor, max_video_tokens=4096, fps=2)
session.add_frames(frames, timestamps=seconds)  # numpy / torch / PIL frames, one or more at a time
session.add_frames("clip.mp4")                  # or a file / URL, read as it is decoded
print(session.ask("What is happening?", max_new_tokens=32))
session.reset()
```

How a stream is encoded, for a model whose temporal encoder is unidirectional (forward-only):

- each kept frame goes through the vision tower and the temporal encoder once; the encoder goes on from the state
  the earlier frames left (`StormMambaCache`: each Mamba block's convolution inputs and scan state);
- every k frames (`temporal_pool_size`) complete a temporal slot; of every s slots (`temporal_sampling_stride`) one
  is kept (`temporal_sampling_slot`: "last" is the slot a stream has when its group completes, and it has seen the
  group's other slots; "first" is kept as soon as it completes, before it has seen them);
- a kept slot's tokens and its frame separator are appended to the language model's KV cache (`StreamKVCache`) as
  soon as it is kept;
- a question adds what is not committed yet (the frames of an incomplete slot, padded with copies of the last frame
  as the processor pads a clip, or the kept slot of an incomplete group), then its own tokens, and `generate`
  answers; the cache is cropped back afterwards, so questions never change the stream.

The answer after N frames is the offline model's answer on the processor's clip of the same N frames, with the same
question and sampling settings, however the frames arrived. With `max_video_tokens`, the cache keeps the newest
slots that fit and drops the oldest (see `streaming_cache` for what happens to positions).

The session uses the processor it is given by duck typing (this module never imports the processor's code): its
chat template, tokenizer, `video_token_id` and `frame_separator_id`, and its video processor's `preprocess_frames`
and `stream_frames`.

Hub code: imports the standard library, torch, transformers' public API and siblings in this folder.
"""

import copy
import math
import os

import torch
from transformers.utils import logging

from .mamba_streaming import StormMambaCache
from .streaming_cache import StreamKVCache
from .token_reduction import resolve_slot, resolve_stride
from .transformers_compat import cache_kwarg

logger = logging.get_logger(__name__)


class FrameRateSampler:
    """Keeps at most `fps` frames per second of a stream as frames arrive: of the frames whose timestamps fall in one
    interval [t0 + j / fps, t0 + (j + 1) / fps), the first (t0 is the first frame's timestamp)."""

    def __init__(self, fps: float):
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps must be a positive number, got {fps!r}.")
        self.fps = fps
        self.reset()

    def reset(self) -> None:
        self._start = self._last = None
        self._next = 0

    def keep(self, seconds: float) -> bool:
        """Whether to keep the frame at `seconds` (non-decreasing from call to call)."""
        seconds = float(seconds)
        if self._last is not None and seconds < self._last:
            raise ValueError(
                f"Frame timestamps must not go back: got {seconds:.6f} s after {self._last:.6f} s. Pass frames in "
                "presentation order."
            )
        if self._start is None:
            self._start = seconds
        self._last = seconds
        interval = math.floor((seconds - self._start) * self.fps + 1e-6)  # a timestamp on a boundary opens it
        if interval < self._next:
            return False
        self._next = interval + 1
        return True


def _is_source(value) -> bool:
    """A path, URL, bytes or binary file object (encoded video), not frames."""
    return isinstance(value, (str, os.PathLike, bytes, bytearray, memoryview)) or hasattr(value, "read")


def _frame_batch(frames):
    """One frame (PIL image, (H, W, C) or (C, H, W) array or tensor) or many (a list, a 4-D array or tensor), as a
    batch the video processor takes."""
    if isinstance(frames, (list, tuple)) or getattr(frames, "ndim", None) == 4:
        if len(frames) == 0:
            raise ValueError("Got no frames: pass at least one.")
        return list(frames) if isinstance(frames, tuple) else frames
    ndim = getattr(frames, "ndim", None)
    if ndim == 3 or hasattr(frames, "getpixel"):  # an array / tensor frame, or a PIL image
        return [frames]
    raise TypeError(
        f"Cannot read frames from a {type(frames).__name__}: pass a PIL image, an (H, W, 3) array or tensor, a list "
        "of those, a (T, H, W, 3) / (T, 3, H, W) array or tensor, or a video source (path, URL, bytes, file object)."
    )


class StormStreamingSession:
    """A live video stream into a STORM model with a unidirectional temporal encoder (see the module docstring).

    Args:
        model: a `StormForConditionalGeneration` (in eval mode).
        processor: its `StormProcessor` (or any object with the same attributes).
        max_video_tokens (`int`, *optional*): the most video tokens the language model's cache holds; the oldest
            kept slot is dropped when a new one would exceed it. At least one slot's tokens. None: no bound.
        fps (`float`, *optional*): keep at most this many frames per second of the stream, chosen by timestamp as
            frames arrive (frames given as arrays then need `timestamps=`). None: keep every frame.
        temporal_sampling_stride (`int`, *optional*), temporal_sampling_slot (`str`, *optional*): test-time
            sampling, as in the model's forward; default: the model's config.
    """

    def __init__(
        self,
        model,
        processor,
        *,
        max_video_tokens: int | None = None,
        fps: float | None = None,
        temporal_sampling_stride: int | None = None,
        temporal_sampling_slot: str | None = None,
    ):
        config = model.config
        temporal = config.temporal_config
        if temporal.bidirectional and temporal.num_layers:
            raise ValueError(
                "This STORM model cannot stream: its temporal encoder is bidirectional "
                "(temporal_config.bidirectional=True). The backward scan reads every clip from its last frame back, "
                "so each video token depends on frames that have not arrived yet, and every new frame would mean "
                "encoding the whole clip again. Stream with a STORM model trained with a unidirectional temporal "
                "encoder (temporal_config.bidirectional=False), or ask this model about finished clips with "
                "model.generate or the video-text-to-text pipeline."
            )
        self.model = model
        self.processor = processor
        self.encoder = model.model.temporal_encoder
        self.stride = resolve_stride(temporal_sampling_stride, temporal.temporal_sampling_stride)
        self.slot = resolve_slot(temporal_sampling_slot, temporal.temporal_sampling_slot)
        if self.stride > 1 and self.slot == "first" and temporal.num_layers:
            logger.warning_once(
                "Streaming with temporal_sampling_slot='first': with a forward-only temporal encoder the first slot "
                "of each group of temporal_sampling_stride slots is kept before the group's other slots arrive and "
                "has seen none of them. 'last' keeps the slot that has seen them."
            )
        _, side = self.encoder.output_grid(temporal.temporal_pool_size, config.vision_grid_size, 1)
        self.tokens_per_slot = side * side
        self._check_processor(processor, config, temporal.temporal_pool_size, self.tokens_per_slot)
        self._block_ids = [processor.video_token_id] * self.tokens_per_slot + [processor.frame_separator_id]
        self.max_slots = None
        if max_video_tokens is not None:
            if isinstance(max_video_tokens, bool) or not isinstance(max_video_tokens, int):
                raise ValueError(f"max_video_tokens must be an integer, got {max_video_tokens!r}.")
            if max_video_tokens < self.tokens_per_slot:
                raise ValueError(
                    f"max_video_tokens={max_video_tokens} holds no temporal slot: a slot is {self.tokens_per_slot} "
                    f"video tokens. Pass at least {self.tokens_per_slot}."
                )
            self.max_slots = max_video_tokens // self.tokens_per_slot
        self.sampler = FrameRateSampler(fps) if fps is not None else None
        self.prefix_ids, _ = self.prompt_ids("")
        self.reset()

    @staticmethod
    def _check_processor(processor, config, pool: int, tokens_per_slot: int) -> None:
        video_processor = processor.video_processor
        if processor.video_token_id != config.video_token_id:
            raise ValueError(
                f"The processor's video token id ({processor.video_token_id}) is not the model's "
                f"({config.video_token_id}): load the processor saved with this model."
            )
        if video_processor.temporal_pool_size != pool:
            raise ValueError(
                f"The processor pools {video_processor.temporal_pool_size} frames per temporal slot, the model {pool}: "
                "load the processor saved with this model."
            )
        if video_processor.tokens_per_frame != tokens_per_slot:
            raise ValueError(
                f"The processor counts {video_processor.tokens_per_frame} tokens per temporal slot, the model makes "
                f"{tokens_per_slot}: load the processor saved with this model."
            )

    # ----- state -----

    @torch.no_grad()
    def reset(self) -> None:
        """Forget the stream: the next frame starts a new one (the settings stay)."""
        encoder = self.encoder
        self._mamba = StormMambaCache(encoder.config, 1, dtype=encoder.dtype, device=encoder.device)
        self._kv = StreamKVCache(self.model.model.language_model, self.prefix_ids, len(self._block_ids))
        self._window = None  # (1, r, H', W', D): the encoder's output for the frames of the incomplete slot
        self._last_features = None  # (1, G, G, C): the vision features of the last frame
        self._group_slot = None  # (tokens, D): with slot "last", the newest slot of an incomplete group
        self.frames_seen = 0  # frames kept (after fps sampling)
        self.slots_seen = 0  # temporal slots completed
        if self.sampler is not None:
            self.sampler.reset()

    @property
    def video_tokens(self) -> int:
        """Video tokens in the language model's cache (committed slots, without their separators)."""
        return self._kv.blocks * self.tokens_per_slot

    @property
    def cache_length(self) -> int:
        """Tokens in the language model's cache between questions: the prompt's prefix and the committed blocks."""
        return self._kv.committed_length

    @property
    def temporal_state_bytes(self) -> int:
        """Bytes of the temporal encoder's stream state (constant over the stream)."""
        return self._mamba.nbytes

    @property
    def kv_cache(self):
        """The language model's `DynamicCache` (prefix and committed slots between questions)."""
        return self._kv.cache

    # ----- frames -----

    @torch.no_grad()
    def add_frames(self, frames, timestamps=None, **source_kwargs) -> int:
        """Add the next frames of the stream; returns how many were kept (all of them, unless `fps` is set).

        `frames`: one frame or many (PIL images, numpy arrays or torch tensors, (H, W, 3) or (3, H, W) each, or a
        (T, ...) array / tensor), or a video source (path, http(s) or stream URL, bytes, binary file object), read
        to its end incrementally with the processor's `stream_frames` (`source_kwargs` go to it, e.g. `follow=True`
        for a file still being written). `timestamps`: seconds of each frame, needed with `fps` for frames.
        """
        if _is_source(frames):
            if timestamps is not None:
                raise ValueError("timestamps= are read from the video source itself; pass them only with frames.")
            return self._add_source(frames, **source_kwargs)
        if source_kwargs:
            raise ValueError(f"{sorted(source_kwargs)} apply to video sources (paths, URLs, file objects), not frames.")
        batch = _frame_batch(frames)
        if self.sampler is not None:
            if timestamps is None:
                raise ValueError(
                    "This session samples frames by time (fps was set): pass timestamps= (seconds of each frame), or "
                    "start the stream without fps to keep every frame."
                )
            timestamps = [float(t) for t in (timestamps if isinstance(timestamps, (list, tuple)) else list(timestamps))]
            if len(timestamps) != len(batch):
                raise ValueError(f"Got {len(timestamps)} timestamps for {len(batch)} frames; pass one per frame.")
            kept = [i for i, seconds in enumerate(timestamps) if self.sampler.keep(seconds)]
            if not kept:
                return 0
            batch = [batch[i] for i in kept] if isinstance(batch, list) else batch[kept]
        self._add_pixels(self.processor.video_processor.preprocess_frames(batch))
        return len(batch)

    def _add_source(self, source, **reader_kwargs) -> int:
        keep = self.sampler.keep if self.sampler is not None else None
        frames, added = [], 0
        video_processor = self.processor.video_processor
        for frame, _ in video_processor.stream_frames(source, keep=keep, **reader_kwargs):
            frames.append(frame)
            if len(frames) == self.model.config.vision_chunk_size:
                self._add_pixels(video_processor.preprocess_frames(frames))
                added, frames = added + len(frames), []
        if frames:
            self._add_pixels(video_processor.preprocess_frames(frames))
        return added + len(frames)

    def _add_pixels(self, pixels: torch.Tensor) -> None:
        """Frames (n, 3, H, W) as the processor prepares them: vision tower, temporal encoder, completed slots."""
        features = self.model.model._encode_frames(pixels.to(self.model.device))  # (n, G, G, C)
        hidden = self.encoder.stream(features[None], self._mamba)  # (1, n, H', W', D)
        self._last_features = features[-1:]
        window = hidden if self._window is None else torch.cat([self._window, hidden], dim=1)
        pool = self.encoder.config.temporal_pool_size
        complete = window.shape[1] // pool * pool
        for start in range(0, complete, pool):
            self._slot_completed(self._pool(window[:, start : start + pool]))
        self._window = window[:, complete:] if complete < window.shape[1] else None
        self.frames_seen += len(pixels)

    def _pool(self, frames: torch.Tensor) -> torch.Tensor:
        """One slot's k frames of encoder output (1, k, H', W', D) -> its tokens (S*S, D)."""
        return self.encoder.reduce(frames, frames.shape[1], 1).flatten(0, 3)

    def _slot_completed(self, tokens: torch.Tensor) -> None:
        index = self.slots_seen
        self.slots_seen += 1
        if self.slot == "first":
            if index % self.stride == 0:
                self._commit(tokens)
        elif index % self.stride == self.stride - 1:
            self._group_slot = None
            self._commit(tokens)
        else:
            self._group_slot = tokens

    def _commit(self, tokens: torch.Tensor) -> None:
        self._make_room(1)
        self._kv.append(self._kv.embed_block(self._block_ids, self.processor.video_token_id, tokens))

    def _make_room(self, new_slots: int) -> None:
        """Drop the oldest cached slots until `new_slots` more fit the budget."""
        while self.max_slots is not None and self._kv.blocks + new_slots > self.max_slots:
            self._kv.drop_oldest_block()

    def _pending_slots(self) -> list[torch.Tensor]:
        """The kept slots a question must add to the committed ones: [tokens (S*S, D)] or []."""
        if self._window is None:
            return [self._group_slot] if self._group_slot is not None else []
        if self.slot == "first" and self.slots_seen % self.stride:
            return []  # the incomplete slot is not the first of its group: sampling drops it
        # the incomplete slot completed with copies of its last frame, from a copy of the encoder's state
        pool, present = self.encoder.config.temporal_pool_size, self._window.shape[1]
        padding = self._last_features.expand(pool - present, -1, -1, -1)[None]  # (1, k - r, G, G, C)
        tail = self.encoder.stream(padding, self._mamba.copy())  # (1, k - r, H', W', D)
        return [self._pool(torch.cat([self._window, tail], dim=1))]

    # ----- questions -----

    def prompt_ids(self, question: str) -> tuple[list[int], list[int]]:
        """The token ids of a one-question prompt before and after its video, as the processor tokenizes them."""
        processor = self.processor
        messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        tokenizer = processor.tokenizer
        # like the processor's apply_chat_template: no special tokens added when the template already wrote them
        starts_with_bos = tokenizer.bos_token is not None and text.startswith(tokenizer.bos_token)
        ids = tokenizer(text, add_special_tokens=not starts_with_bos)["input_ids"]
        if ids.count(processor.video_token_id) != 1:
            raise ValueError(
                f"The chat template must write one video placeholder for one video block, got "
                f"{ids.count(processor.video_token_id)} in {text!r}."
            )
        at = ids.index(processor.video_token_id)
        return ids[:at], ids[at + 1 :]

    def ask(self, question: str, **generate_kwargs):
        """Answer `question` about every frame seen so far; `generate_kwargs` go to `model.generate`.

        Returns the decoded answer (a list of answers when `num_return_sequences` > 1). The stream is unchanged.
        """
        answers = self.processor.tokenizer.batch_decode(
            self.answer_ids(question, **generate_kwargs), skip_special_tokens=True
        )
        return answers[0] if len(answers) == 1 else answers

    @torch.no_grad()
    def answer_ids(self, question: str, **generate_kwargs) -> torch.Tensor:
        """`ask` without decoding: the answer's token ids (num_sequences, new_tokens)."""
        if self.frames_seen == 0:
            raise ValueError("No frame has been added yet: call add_frames() before asking.")
        prefix, suffix = self.prompt_ids(question)
        if prefix != self.prefix_ids:
            raise ValueError(
                "The chat template writes text before the video that depends on the question; a stream needs the "
                "question after the video."
            )
        pending = self._pending_slots()
        self._make_room(len(pending))
        video_id = self.processor.video_token_id
        new_ids = self._block_ids * len(pending) + suffix
        embeds = torch.cat(
            [self._kv.embed_block(self._block_ids, video_id, tokens) for tokens in pending] + [self._kv.embed(suffix)],
            dim=1,
        )  # (1, len(new_ids), D)
        ids = torch.tensor([self.prefix_ids + self._block_ids * self._kv.blocks + new_ids], device=embeds.device)
        try:
            if len(new_ids) > 1:
                self._kv.extend(embeds[:, :-1])  # generate runs the last token, then the answer's
            cache = self._kv.cache
            generation = self.model.generation_config
            beams = generate_kwargs.get("num_beams") or generation.num_beams or 1
            sequences = generate_kwargs.get("num_return_sequences") or generation.num_return_sequences or 1
            if beams > 1 or sequences > 1:
                cache = copy.deepcopy(cache)  # beam search reorders and expands the cache it is given
            output = self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                position_ids=self._kv.positions(ids.shape[1]),
                **cache_kwarg(cache),
                **generate_kwargs,
            )
        finally:
            self._kv.crop()
        return getattr(output, "sequences", output)[:, ids.shape[1] :]


__all__ = ["FrameRateSampler", "StormStreamingSession"]
