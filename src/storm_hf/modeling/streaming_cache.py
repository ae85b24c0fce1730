"""The language model's side of a stream: a KV cache holding a text prefix, then one block per kept temporal slot.

`StreamKVCache` wraps a transformers `DynamicCache`. Its committed part is the prompt's text before the video (the
prefix) followed by the blocks appended so far, each block the slot's video tokens and its frame separator. A
question's tokens and its answer go on top of the committed part and are cropped away afterwards, so questions
never become part of the stream.

Positions (RoPE). A token's position is the number of tokens appended before it, counting the blocks dropped since.
With a budget of blocks, dropping the oldest block removes its keys and values from every layer and moves the
prefix forward: the prefix's keys and values are recomputed at the positions just before the oldest block still
cached (the prefix attends only to itself, so this is exactly the prefix a fresh forward computes there). The
cache then always reads, in relative positions, as the contiguous prompt [prefix][cached blocks][question], and
attention scores depend on relative positions only. Absolute positions keep growing with the stream; the language
model turns them into angles in fp32, exact to about position x 6e-8 radians at its highest frequency (6e-4 rad at
10,000 positions, 0.06 rad at a million). What dropping cannot undo: the keys and values of the later layers of the
cached blocks were computed while the dropped block was visible, and keep what they took from it.

Hub code: imports torch and transformers' public API.
"""

import torch
from transformers import DynamicCache

from .transformers_compat import cache_kwarg


class StreamKVCache:
    """A `DynamicCache` (`cache`) holding `prefix_ids`' keys and values, then blocks of `block_length` tokens."""

    def __init__(self, language_model, prefix_ids: list[int], block_length: int):
        self.language_model = language_model
        self.prefix_ids = list(prefix_ids)
        self.block_length = block_length
        self.cache = DynamicCache()
        self.blocks = 0  # blocks in the cache
        self.dropped_tokens = 0  # tokens of the blocks dropped so far
        self._forward(self.embed(self.prefix_ids), self.cache, start=0)

    @property
    def prefix_length(self) -> int:
        return len(self.prefix_ids)

    @property
    def committed_length(self) -> int:
        """Tokens of the prefix and the cached blocks."""
        return self.prefix_length + self.blocks * self.block_length

    @property
    def next_position(self) -> int:
        """The position of the next token appended."""
        return self.dropped_tokens + self.committed_length

    def embed(self, ids: list[int]) -> torch.Tensor:
        embeddings = self.language_model.get_input_embeddings()
        return embeddings(torch.tensor([ids], device=embeddings.weight.device))  # (1, n, D)

    def _forward(self, inputs_embeds: torch.Tensor, cache: DynamicCache, start: int) -> None:
        """Run the language model over `inputs_embeds` (1, n, D) at positions start .., appending to `cache`."""
        positions = torch.arange(start, start + inputs_embeds.shape[1], device=inputs_embeds.device)[None]
        self.language_model(inputs_embeds=inputs_embeds, position_ids=positions, use_cache=True, **cache_kwarg(cache))

    def embed_block(self, ids: list[int], token_id: int, features: torch.Tensor) -> torch.Tensor:
        """Embeddings of `ids` (1, n, D) with its `token_id` placeholders filled by `features` (count, D) in order."""
        embeds = self.embed(ids)
        mask = torch.tensor(ids, device=embeds.device) == token_id
        embeds[0, mask] = features.to(embeds.dtype)
        return embeds

    def append(self, inputs_embeds: torch.Tensor) -> None:
        """Commit a block (1, block_length, D) at the next position."""
        self._forward(inputs_embeds, self.cache, start=self.next_position)
        self.blocks += 1

    def extend(self, inputs_embeds: torch.Tensor) -> None:
        """Put uncommitted tokens (a question's) on top of the committed part; `crop` removes them."""
        self._forward(inputs_embeds, self.cache, start=self.cache.get_seq_length() + self.dropped_tokens)

    def crop(self) -> None:
        """Remove everything above the committed part (a question and its answer)."""
        extra = self.cache.get_seq_length() - self.committed_length
        if extra > 0:
            self.cache.crop(-extra)  # a negative count removes that many tokens on every supported release

    def drop_oldest_block(self) -> None:
        """Remove the oldest cached block and move the prefix to the positions just before the next one."""
        start, stop = self.prefix_length, self.prefix_length + self.block_length
        for layer in self.cache.layers:
            layer.keys = torch.cat([layer.keys[..., :start, :], layer.keys[..., stop:, :]], dim=-2)
            layer.values = torch.cat([layer.values[..., :start, :], layer.values[..., stop:, :]], dim=-2)
        self.blocks -= 1
        self.dropped_tokens += self.block_length
        prefix = DynamicCache()
        self._forward(self.embed(self.prefix_ids), prefix, start=self.dropped_tokens)
        for layer, fresh in zip(self.cache.layers, prefix.layers):
            layer.keys[..., :start, :] = fresh.keys
            layer.values[..., :start, :] = fresh.values

    def positions(self, length: int) -> torch.Tensor:
        """(1, length) position ids of a sequence that starts with the cached prefix."""
        device = self.cache.layers[0].keys.device
        return torch.arange(self.dropped_tokens, self.dropped_tokens + length, device=device)[None]


__all__ = ["StreamKVCache"]
