"""Distributions over time: resampling a temporal vector to another length, and measuring
how much of it falls inside labelled events.

Stage one resamples the teacher's vector (20 ms frames) to each student's length; stage
two compares it with the student's attention and reports the in-event mass, the direct
measure of whether temporal knowledge is present in (or was transferred to) a vector.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

Span = tuple[float, float]


def resample_distribution(weights: torch.Tensor, size: int) -> torch.Tensor:
    """Resample non-negative weights ``[..., n]`` to ``[..., size]`` summing to 1.

    The weights are read as a density and interpolated linearly (``align_corners=False``).
    Upsampling is plain linear interpolation. Downsampling uses the antialiased form,
    whose triangle filter widens with the ratio: plain linear point-sampling would skip
    frames when ``n > 2 * size`` and can lose a one-hot peak altogether. The result is
    clamped at 0 and renormalised. When ``n == size`` the input is returned unchanged
    (as float32, not renormalised) so a cached vector round-trips bit-exact.
    Computed and returned in float32 whatever the input float dtype.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if weights.ndim < 1 or weights.shape[-1] < 1:
        raise ValueError(f"weights must have a non-empty last dim, got {tuple(weights.shape)}")
    x = weights.to(torch.float32)
    n = x.shape[-1]
    if n == size:
        return x.clone()
    flat = x.reshape(-1, 1, 1, n)
    out = F.interpolate(
        flat, size=(1, size), mode="bilinear", align_corners=False, antialias=True
    ).clamp_min(0.0)
    total = out.sum(dim=-1, keepdim=True)
    if bool((total <= 0).any()):
        raise ValueError("weights has a row with no positive mass; cannot renormalise")
    return (out / total).reshape(*x.shape[:-1], size)


def frame_centres(num_bins: int, duration: float) -> torch.Tensor:
    """Centre time in seconds of each of ``num_bins`` equal bins over ``[0, duration]``.

    float64, so comparisons against event boundaries do not flip by rounding.
    """
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins}")
    if duration <= 0:
        raise ValueError(f"duration must be > 0, got {duration}")
    return (torch.arange(num_bins, dtype=torch.float64) + 0.5) * (duration / num_bins)


def event_mask(num_bins: int, duration: float, events: Sequence[Span]) -> torch.Tensor:
    """Bool ``[num_bins]``: True where a bin's centre lies in some closed span
    ``[onset, offset]`` (seconds). No events gives an all-False mask."""
    centres = frame_centres(num_bins, duration)
    mask = torch.zeros(num_bins, dtype=torch.bool)
    for onset, offset in events:
        if offset < onset:
            raise ValueError(f"event offset {offset} precedes its onset {onset}")
        mask |= (centres >= onset) & (centres <= offset)
    return mask


def in_event_mass(weights: torch.Tensor, duration: float, events: Sequence[Span]) -> torch.Tensor:
    """Share of the mass of ``weights [..., n]`` inside the events -> ``[...]`` (float32).

    Divided by the total mass, so unnormalised vectors (e.g. raw received attention) are
    measured the same way (a row with no mass gives NaN). Uniform weights give the
    fraction of bins inside the events (about event length / duration): the chance level
    a vector with temporal knowledge should beat.
    """
    x = weights.to(torch.float32)
    mask = event_mask(x.shape[-1], duration, events).to(x.device)
    return (x * mask).sum(dim=-1) / x.sum(dim=-1)
