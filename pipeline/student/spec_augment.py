"""SpecAugment (Park et al., 2019) on the student's features only.

The teacher's targets describe the clip (or view) the teacher heard; masking bands and
frames hides part of it from the student alone, which must still match them. Masks are
drawn from (seed, clip id, epoch) like the views (`pipeline.student.replay`), so a run
is the same whatever the DataLoader workers, the batch order or a resume. A masked
region takes the clip's mean feature value: log-mel features are not zero-centred, and
a zero would be a loud, artificial band.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from pipeline.data.recipes.common import stable_hash

SPEC_AUGMENT_STREAM = 0x7370_6563  # "spec": apart from the views' and the mixing streams


@dataclass(frozen=True)
class SpecAugment:
    """``freq_masks`` bands of up to ``freq_width`` bins and ``time_masks`` spans of up to
    ``time_width`` of the frames (LibriSpeech-like policy, scaled to 40 bins and 1-8 s)."""

    freq_masks: int = 2
    freq_width: int = 7
    time_masks: int = 2
    time_width: float = 0.1

    def __post_init__(self) -> None:
        if min(self.freq_masks, self.freq_width, self.time_masks) < 0:
            raise ValueError("SpecAugment mask counts and widths must be 0 or more")
        if not 0 <= self.time_width <= 1:
            raise ValueError(f"time_width is a fraction of the frames, got {self.time_width}")

    def __call__(self, features: torch.Tensor, seed: int, clip_id: str, epoch: int) -> torch.Tensor:
        """[T, F] features with this (clip, epoch)'s masks; the input is not modified."""
        rng = np.random.default_rng([seed, stable_hash(clip_id), SPEC_AUGMENT_STREAM, epoch])
        frames, bins = features.shape
        masked = features.clone()
        fill = features.mean()
        for _ in range(self.freq_masks):
            width = int(rng.integers(0, min(self.freq_width, bins) + 1))
            start = int(rng.integers(0, bins - width + 1))
            masked[:, start : start + width] = fill
        longest = int(self.time_width * frames)
        for _ in range(self.time_masks):
            width = int(rng.integers(0, longest + 1))
            start = int(rng.integers(0, frames - width + 1))
            masked[start : start + width] = fill
        return masked

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
