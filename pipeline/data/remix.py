"""On-the-fly re-mixing: a fresh draw of a generated clip at every training step.

Generated datasets (``synth``, ``noisy-digits``) record in each clip's ``mix`` how it
was made, so the teacher can see a new offset, noise excerpt and SNR every time while
the labels stay the same. Noisy re-mixes draw only from the clip's split's region of
the noise file (``mix["noise_region"]``), so augmentation never leaks test noise into
training. Clips without a ``mix`` record are returned as they are.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from pipeline.data.audio import load_audio
from pipeline.data.manifest import Clip, Manifest
from pipeline.data.recipes.noisy_digits import remix_noisy_digits
from pipeline.data.recipes.synth import remix_synth

Remixer = Callable[[Clip, np.random.Generator, int], tuple[torch.Tensor, list[tuple[float, float]]]]
REMIXERS: dict[str, Remixer] = {
    "synth": remix_synth,
    "noisy-digits": remix_noisy_digits,
    "noisy-speech-commands": remix_noisy_digits,  # same mixing, other sources
}


def can_remix(clip: Clip) -> bool:
    return bool(clip.mix) and clip.mix.get("generator") in REMIXERS


def clip_waveform(
    manifest: Manifest, clip: Clip, sample_rate: int, rng: np.random.Generator | None = None
) -> torch.Tensor:
    """The clip's audio, or a fresh re-mix of it when ``rng`` is given and it can be re-mixed."""
    if rng is not None and can_remix(clip):
        wave, _ = REMIXERS[clip.mix["generator"]](clip, rng, sample_rate)
        return wave
    return load_audio(manifest.audio_path(clip), sample_rate)
