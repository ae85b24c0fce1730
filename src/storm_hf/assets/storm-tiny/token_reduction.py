"""Reshapes around the temporal encoder: space-to-channel downsampling, pooling and test-time sampling.

All functions work on grids `(B, T, H, W, C)`. Hub code: imports only torch.
"""

import math

import torch
import torch.nn.functional as F


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


def temporal_pool_and_sample(x: torch.Tensor, pool_size: int, stride: int) -> torch.Tensor:
    """Average every `pool_size` consecutive frames into a slot, keeping only slots 0, s, 2s, ...

    (B, T, H, W, D) -> (B, ceil(T / k / s), H, W, D). Dropped slots are never averaged.
    """
    batch, frames, height, width, dim = x.shape
    x = x.view(batch, frames // pool_size, pool_size, height, width, dim)  # (B, T/k, k, H, W, D)
    return x[:, ::stride].mean(dim=2)


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
