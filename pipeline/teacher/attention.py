"""Teacher attention -> temporal vectors (Choi et al. 2022, via attention rollout).

Attention rollout (Abnar & Zuidema, 2020): Ā_l = rownorm(0.5·A_l + 0.5·I) with A_l the
head-averaged map of layer l, and R_l = Ā_l ··· Ā_1. The temporal vector after layer l
is the classifier's row of R_l: row 0 for a first-token classifier, the mean over rows
for a mean-pooling one. Only rows are needed, so we never form R_l: each layer's vector
is a chain of vector-matrix products (O(L²·T²) instead of the O(L·T³) matrix products).

Padding never gets mass: maps are restricted to each clip's real frames first.
"""

from __future__ import annotations

import torch

REDUCTIONS = ("mean-row", "first-row")


def restrict_to_frames(maps: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Zero the rows and columns of padded frames and renormalise the real rows.

    maps: [B, L, T, T]; frames: [B] real frames per clip.
    """
    positions = torch.arange(maps.shape[-1], device=maps.device)
    real = positions[None, :] < frames[:, None]  # [B, T]
    mask = (real[:, :, None] & real[:, None, :])[:, None]  # [B, 1, T, T]
    kept = maps * mask
    return kept / kept.sum(dim=-1, keepdim=True).clamp_min(1e-12)


def _start_rows(frames: torch.Tensor, size: int, reduction: str) -> torch.Tensor:
    """The row selector s of each clip: uniform over real rows, or the first row."""
    positions = torch.arange(size, device=frames.device)
    if reduction == "mean-row":
        start = (positions[None, :] < frames[:, None]).float()
        return start / frames[:, None].float()
    if reduction == "first-row":
        return (positions[None, :] == 0).float().expand(frames.shape[0], size)
    raise ValueError(f"unknown reduction {reduction!r}; use one of {REDUCTIONS}")


def rollout_vectors(
    maps: torch.Tensor, frames: torch.Tensor, reduction: str = "mean-row"
) -> torch.Tensor:
    """[B, L, T, T] head-averaged maps -> [B, L, T]: row s of R_l for every layer l.

    Row l of the running matrix V holds sᵀ·Ā_l···Ā_(k+1) while layers are taken from the
    top down, so one batched [L, T]×[T, T] product per layer yields every prefix rollout.
    """
    batch, layers, size, _ = maps.shape
    residual = 0.5 * restrict_to_frames(maps, frames) + 0.5 * torch.eye(size, device=maps.device)
    residual = residual / residual.sum(dim=-1, keepdim=True)
    start = _start_rows(frames, size, reduction)
    chains = torch.zeros(batch, layers, size, device=maps.device, dtype=maps.dtype)
    for layer in reversed(range(layers)):
        chains[:, layer] = start
        chains[:, layer:] = chains[:, layer:] @ residual[:, layer]
    return chains


def received_attention(maps: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """[B, L, T, T] -> [B, L, T]: each layer's attention received per frame (query mean)."""
    restricted = restrict_to_frames(maps, frames)
    return restricted.sum(dim=-2) / frames[:, None, None].float()


def maps_to_resolution(maps: torch.Tensor, frames: torch.Tensor, resolution: int) -> torch.Tensor:
    """[B, L, T, T] -> [B, L, R, R]: real-frame maps, bilinearly resized, rows renormalised."""
    restricted = restrict_to_frames(maps, frames)
    resized = [
        torch.nn.functional.interpolate(
            restricted[i : i + 1, :, :n, :n],
            size=(resolution, resolution),
            mode="bilinear",
            align_corners=False,
        )[0]
        for i, n in enumerate(frames.tolist())
    ]
    stacked = torch.stack(resized).clamp_min(0)
    return stacked / stacked.sum(dim=-1, keepdim=True).clamp_min(1e-12)
