"""Keypoint heat-maps: one Gaussian channel per keypoint at the network's input resolution.

``keypoint_heatmaps`` draws, for keypoint k at pixel (x, y) with weight w, the channel
``w * exp(-((u - x)^2 + (v - y)^2) / (2 sigma^2))`` over pixel centres (u, v) = 0..size-1
(pixel centres at integers, y down), so a keypoint on a pixel centre peaks at exactly w there.
Weights carry visibility or confidence: 0 gives an all-zero channel, as does a non-finite
keypoint. A keypoint outside the map keeps the part of its Gaussian that falls inside (its
tail along the border), which is zero once it is more than 4 sigma away: values below
exp(-8) (4 sigma) are set to zero everywhere, so far tails carry no noise and CPUs meet no
denormals.

One torch implementation serves both worlds: numpy in gives float32 numpy out (data
preparation, figures); a torch tensor in gives a tensor on the same device (batched training
on the GPU).
"""
from __future__ import annotations

import numpy as np
import torch

FLOOR = float(np.exp(-8.0))  # 4 sigma


def keypoint_heatmaps(keypoints, size: int, sigma: float, weights=None):
    """(..., K, size, size) heat-maps of ``keypoints`` (..., K, 2), pixels of the ``size`` map.

    ``weights`` (..., K) scale each channel (None: 1). Numpy in, numpy float32 out; torch in,
    torch out (same device; float dtype kept, else float32).
    """
    as_numpy = not isinstance(keypoints, torch.Tensor)
    points = _as_float_tensor(keypoints, "keypoints")
    if points.ndim < 2 or points.shape[-1] != 2:
        raise ValueError(f"keypoints: expected shape (..., K, 2) in pixels, got {tuple(points.shape)}")
    if int(size) != size or size < 1:
        raise ValueError(f"size: expected a positive integer, got {size}")
    if not sigma > 0:
        raise ValueError(f"sigma: expected a positive width in pixels, got {sigma}")
    scale = torch.ones(points.shape[:-1], dtype=points.dtype, device=points.device)
    if weights is not None:
        weights = _as_float_tensor(weights, "weights").to(points)
        if weights.shape != points.shape[:-1]:
            raise ValueError(f"weights: expected shape {tuple(points.shape[:-1])} (one per keypoint), "
                             f"got {tuple(weights.shape)}")
        scale = torch.nan_to_num(weights, nan=0.0)
    finite = torch.isfinite(points).all(dim=-1)
    scale = torch.where(finite, scale, torch.zeros_like(scale))
    points = torch.where(finite[..., None], points, torch.zeros_like(points))

    grid = torch.arange(int(size), dtype=points.dtype, device=points.device)
    gx = torch.exp(-(grid - points[..., 0:1]).square() / (2 * sigma ** 2))  # (..., K, size)
    gy = torch.exp(-(grid - points[..., 1:2]).square() / (2 * sigma ** 2))
    maps = gy[..., :, None] * gx[..., None, :]
    maps = torch.where(maps < FLOOR, torch.zeros_like(maps), maps) * scale[..., None, None]
    return maps.numpy() if as_numpy else maps


def heatmap_argmax(heatmaps):
    """Peak of each channel: ``(points (..., K, 2) as (x, y) pixels, values (..., K))``.

    Channels that are zero everywhere give NaN points and value 0. Numpy or torch, as given.
    """
    as_numpy = not isinstance(heatmaps, torch.Tensor)
    maps = _as_float_tensor(heatmaps, "heatmaps")
    if maps.ndim < 3:
        raise ValueError(f"heatmaps: expected shape (..., K, H, W), got {tuple(maps.shape)}")
    height, width = maps.shape[-2:]
    values, flat = maps.flatten(-2).max(dim=-1)
    points = torch.stack([flat % width, torch.div(flat, width, rounding_mode="floor")], dim=-1).to(maps.dtype)
    points = torch.where((values > 0)[..., None], points, torch.full_like(points, float("nan")))
    if as_numpy:
        return points.numpy(), values.numpy()
    return points, values


def _as_float_tensor(value, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value if value.is_floating_point() else value.float()
    try:
        return torch.as_tensor(np.asarray(value, dtype=np.float32))
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected an array of numbers, got {type(value).__name__}") from None
