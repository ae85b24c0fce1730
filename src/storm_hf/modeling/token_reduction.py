"""Reshapes around the temporal encoder: space-to-channel downsampling, pooling and test-time sampling.

All functions work on grids `(B, T, H, W, C)`. Hub code: imports only torch and its sibling configuration module.
"""

import math

import torch
import torch.nn.functional as F

from .configuration_storm import TEMPORAL_SAMPLING_SLOTS


def space_to_channel(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, T, H, W, C) -> (B, T, ceil(H/w), ceil(W/w), w*w*C).

    Odd grids are zero-padded at the bottom/right first. The channels of an output cell are ordered
    (row offset, column offset, channel), the order of VILA's 2x2 downsample block.
    """
    if window == 1:
        return x
    batch, frames, height, width, channels = x.shape
    pad_h, pad_w = -height % window, -width % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    rows, cols = (height + pad_h) // window, (width + pad_w) // window
    x = x.view(batch, frames, rows, window, cols, window, channels)
    x = x.permute(0, 1, 2, 4, 3, 5, 6)  # (B, T, rows, cols, dr, dc, C)
    return x.reshape(batch, frames, rows, cols, window * window * channels)


def resolve_stride(stride, default: int) -> int:
    """A per-call temporal sampling stride (int, 0-d tensor or None) as a validated int."""
    if stride is None:
        return default
    if isinstance(stride, torch.Tensor):
        stride = stride.item() if stride.numel() == 1 else None
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"temporal_sampling_stride must be a positive integer, got {stride!r}.")
    return stride


def resolve_slot(slot, default: str) -> str:
    """A per-call temporal sampling slot ("first" / "last" or None for the config's) as a validated string."""
    if slot is None:
        return default
    if slot not in TEMPORAL_SAMPLING_SLOTS:
        raise ValueError(f"temporal_sampling_slot must be one of {TEMPORAL_SAMPLING_SLOTS}, got {slot!r}.")
    return slot


def kept_slots(num_slots: int, stride: int, slot: str = "first") -> list[int]:
    """Indices of the temporal slots that sampling with stride `stride` keeps, one per group of `stride` slots.

    `"first"`: slots 0, s, 2s, ... `"last"`: slots s-1, 2s-1, ..., and the last slot when the final group is
    incomplete. Both keep ceil(num_slots / s) slots. With a forward-only (unidirectional) temporal encoder the last
    slot of a group has seen the group's dropped slots and the first has not.
    """
    if resolve_slot(slot, "first") == "first":
        return list(range(0, num_slots, stride))
    return [min(start + stride, num_slots) - 1 for start in range(0, num_slots, stride)]


def temporal_pool_and_sample(x: torch.Tensor, pool_size: int, stride: int, slot: str = "first") -> torch.Tensor:
    """Average every `pool_size` consecutive frames into a slot, keeping one slot of every `stride` (`kept_slots`).

    (B, T, H, W, D) -> (B, ceil(T / k / s), H, W, D). Dropped slots are never averaged.
    """
    batch, frames, height, width, dim = x.shape
    x = x.view(batch, frames // pool_size, pool_size, height, width, dim)  # (B, T/k, k, H, W, D)
    if slot == "first":  # a strided view, no gather
        return x[:, ::stride].mean(dim=2)
    index = torch.tensor(kept_slots(frames // pool_size, stride, slot), device=x.device)
    return x.index_select(1, index).mean(dim=2)  # (B, T', H, W, D)


def spatial_pool(x: torch.Tensor, pool_size: int) -> torch.Tensor:
    """Average `pool_size` x `pool_size` windows: (B, T, H, W, D) -> (B, T, ceil(H/p), ceil(W/p), D).

    Windows that overhang an edge average the cells they cover.
    """
    if pool_size == 1:
        return x
    batch, frames, height, width, dim = x.shape
    # A (N, H, W, D) tensor permuted to (N, D, H, W) is channels-last in memory: avg_pool2d reads it in place.
    grid = x.reshape(batch * frames, height, width, dim).permute(0, 3, 1, 2)
    pooled = F.avg_pool2d(grid, pool_size, stride=pool_size, ceil_mode=True)
    out_h, out_w = pooled.shape[-2:]
    return pooled.permute(0, 2, 3, 1).reshape(batch, frames, out_h, out_w, dim)


def reduced_grid_side(grid_side: int, downsample: int, spatial_pool_size: int) -> int:
    """Tokens per side of one temporal slot, from the vision tower's patches per side."""
    return math.ceil(math.ceil(grid_side / downsample) / spatial_pool_size)


def num_temporal_slots(num_frames: int, pool_size: int, stride: int) -> int:
    """Temporal slots that reach the LLM: a single frame (an image) is one slot, never pooled or sampled."""
    if num_frames == 1:
        return 1
    return math.ceil(num_frames // pool_size / stride)
