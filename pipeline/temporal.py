"""Distributions over time: the one home of the time axis between teacher and student.

The teacher's vectors cover each clip's real span (its unpadded frames); a student sees
every clip padded to the dataset's longest, so its steps cover padding too. Stage one
resamples each clip's real frames to R bins (`to_resolution`); stage two lays those R bins
onto the student steps that cover the clip's real audio, padding steps getting no mass
(`to_student_steps`). Both go through `resample_spans`, one vectorised call per group of
clips of equal length, so a fixed-length batch is one call. In-event mass, the direct
measure of whether a vector holds temporal knowledge, is here too.
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


def resample_spans(
    weights: torch.Tensor, lengths: torch.Tensor, sizes: torch.Tensor, width: int
) -> torch.Tensor:
    """Row b's span ``weights[b, ..., :lengths[b]]`` resampled to ``sizes[b]`` steps and laid
    at the start of ``width`` steps; the steps after it (padding) get 0 -> ``[B, ..., width]``.

    Rows sharing (length, size) are resampled by one `resample_distribution` call, whose
    rows are independent, so the result equals per-row calls bit for bit.
    """
    pairs = list(zip(lengths.tolist(), sizes.tolist(), strict=True))
    out = torch.zeros(*weights.shape[:-1], width, dtype=torch.float32, device=weights.device)
    for length, size in sorted(set(pairs)):
        rows = torch.tensor([b for b, pair in enumerate(pairs) if pair == (length, size)])
        rows = rows.to(weights.device)
        out[rows, ..., :size] = resample_distribution(weights[rows, ..., :length], size)
    return out


def to_resolution(vectors: torch.Tensor, frames: torch.Tensor, resolution: int) -> torch.Tensor:
    """Stage one: [B, L, T] over padded teacher frames -> [B, L, resolution] over each
    clip's ``frames`` real frames."""
    sizes = torch.full_like(frames, resolution)
    return resample_spans(vectors, frames, sizes, resolution)


def student_steps_covering(
    durations: torch.Tensor, padded_seconds: float, steps: int
) -> torch.Tensor:
    """[B] student steps (of ``steps`` over ``padded_seconds``) that cover each clip's real
    audio: at least 1, at most all. Rounds half to even, as Python's ``round``."""
    share = steps * durations.to(torch.float64) / padded_seconds
    return torch.round(share).long().clamp(1, steps)


def to_student_steps(
    vectors: torch.Tensor, durations: torch.Tensor, padded_seconds: float, steps: int
) -> torch.Tensor:
    """Stage two: [B, R] teacher vectors over each clip's real span -> [B, steps] targets
    over the student's padded steps, steps that cover padding getting no mass."""
    lengths = torch.full((vectors.shape[0],), vectors.shape[-1])
    covered = student_steps_covering(durations, padded_seconds, steps)
    return resample_spans(vectors, lengths, covered, steps)


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
