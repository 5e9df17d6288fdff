"""Generated noisy clips (noisy digits, noisy Speech Commands): recordings placed at
random, non-overlapping offsets inside noise, each at an SNR measured over its own span,
every draw from the clip's own rng. Noise is split-disjoint: every noise file is cut into
consecutive time regions, one per split (:data:`NOISE_REGIONS`: first 80 % train, next
10 % valid, last 10 % test), and a clip draws its excerpt only from its split's region
(looping inside it when the region is shorter than the clip), so all splits hear every
noise type, never the same samples, and a model cannot score on test by recognising
noise it trained on. Each clip's ``mix`` record says how it was made, so :func:`remix`
can re-draw it (fresh offsets, excerpt and SNR) for on-the-fly augmentation.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.data.audio import cached_audio, fit_length, mix_at_snr, save_audio
from pipeline.data.manifest import Clip, LabelSet, Manifest
from pipeline.data.recipes.common import (
    AUDIO_SUFFIXES,
    Skipped,
    Source,
    clip_rng,
    probe_sources,
    refuse_if_strict,
    require_dir,
    run_jobs,
    save_dataset,
)
from pipeline.errors import AudioError, ManifestError

AUDIO_DIR = "audio"


@dataclass(frozen=True)
class NoisySpec:
    """How a noisy clip is drawn: every random choice comes from the clip's own rng."""

    generator: str
    length: float
    snr_db: tuple[float, float]
    sample_rate: int
    seed: int

    @property
    def samples(self) -> int:
        return round(self.length * self.sample_rate)


@dataclass(frozen=True)
class NoisyJob:
    """One clip to generate: its sources in priority order (the first is always kept)."""

    id: str
    split: str
    sources: tuple[Source, ...]


def noise_files(noise: Path) -> list[Path]:
    """A noise folder's audio files in name order (a single file is allowed too)."""
    if noise.is_file():
        return [noise]
    require_dir(noise, "noise")
    return sorted(p for p in noise.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)


def mix_events(
    events: Sequence[torch.Tensor], offsets: Sequence[int], noise: torch.Tensor, snr_db: float
) -> torch.Tensor:
    """Each event at ``snr_db`` against the noise over its own span.

    Later events are scaled against the raw noise and folded into the bed; since spans do
    not overlap, ``mix_at_snr`` on the first event then scales bed and events alike, so a
    single event is exactly ``mix_at_snr``.
    """
    bed = noise.clone()
    for event, offset in zip(events[1:], offsets[1:], strict=True):
        span = slice(offset, offset + event.shape[-1])
        event_power = event.pow(2).mean().clamp_min(1e-10)
        noise_power = noise[span].pow(2).mean().clamp_min(1e-10)
        bed[span] += event * torch.sqrt(noise_power * 10 ** (snr_db / 10) / event_power)
    return mix_at_snr(events[0], bed, offsets[0], snr_db)


def fit_events(
    events: list[torch.Tensor], samples: int, may_drop: bool
) -> tuple[list[torch.Tensor], int]:
    """Make the events fit end to end: drop trailing ones (when allowed), then centre-crop
    each in proportion. Returns the events and how many were kept."""
    if may_drop:
        while len(events) > 1 and sum(e.shape[-1] for e in events) > samples:
            events = events[:-1]
    total = sum(e.shape[-1] for e in events)
    if total > samples:
        events = [fit_length(e, e.shape[-1] * samples // total, "center") for e in events]
    return events, len(events)


def place_events(lengths: Sequence[int], samples: int, rng: np.random.Generator) -> list[int]:
    """Uniformly random non-overlapping offsets, in the given order."""
    free = samples - sum(lengths)
    gaps = np.sort(rng.integers(0, free + 1, size=len(lengths)))
    before = np.cumsum([0, *lengths[:-1]])
    return [int(gap + start) for gap, start in zip(gaps, before, strict=True)]


NOISE_REGIONS = {"train": (0.0, 0.8), "valid": (0.8, 0.9), "test": (0.9, 1.0)}


def noise_region(path: str, split: str, sample_rate: int) -> tuple[int, int]:
    """The [start, end) samples of a noise file that ``split`` may use.

    Neighbouring splits share a rounded boundary, so the regions tile the file without
    overlap.
    """
    total = cached_audio(path, sample_rate).shape[-1]
    low, high = NOISE_REGIONS[split]
    start, end = round(low * total), round(high * total)
    if end <= start:
        raise AudioError(Path(path), f"noise too short to give the {split} split its own region")
    return start, end


def noise_excerpt(
    path: str, start: int, samples: int, sample_rate: int, region: tuple[int, int]
) -> torch.Tensor:
    """``samples`` of noise from ``start``, inside ``region`` (see :func:`looped_excerpt`)."""
    return looped_excerpt(cached_audio(path, sample_rate), start, samples, region)


def looped_excerpt(
    noise: torch.Tensor, start: int, samples: int, region: tuple[int, int]
) -> torch.Tensor:
    """``samples`` of ``noise`` from ``start``, inside ``region``; a region shorter than
    that is looped, so no sample outside it is ever used (recipes and re-mixed views)."""
    noise, offset = noise[region[0] : region[1]], start - region[0]
    if noise.shape[-1] < offset + samples:
        noise = noise.repeat(math.ceil((offset + samples) / noise.shape[-1]))
    return noise[offset : offset + samples]


def render_noisy(
    sources: Sequence[str],
    noises: Sequence[str],
    length: float,
    snr_range: tuple[float, float],
    sample_rate: int,
    rng: np.random.Generator,
    may_drop: bool,
    split: str,
) -> tuple[torch.Tensor, list[tuple[float, float]], dict[str, Any]]:
    """Draw noise file, excerpt (inside ``split``'s noise region), SNR, order and offsets;
    mix the sources into the noise.

    Returns the wave, the event spans (in onset order) and what was drawn, with
    ``sources`` listing the kept sources in onset order.
    """
    samples = round(length * sample_rate)
    events, kept = fit_events(
        [cached_audio(path, sample_rate) for path in sources], samples, may_drop
    )
    order = [int(i) for i in rng.permutation(kept)]
    events = [events[i] for i in order]
    noise = noises[int(rng.integers(len(noises)))]
    region = noise_region(noise, split, sample_rate)
    start = region[0] + int(rng.integers(max(region[1] - region[0] - samples, 0) + 1))
    snr_db = float(rng.uniform(*snr_range))
    offsets = place_events([e.shape[-1] for e in events], samples, rng)
    excerpt = noise_excerpt(noise, start, samples, sample_rate, region)
    wave = mix_events(events, offsets, excerpt, snr_db)
    spans = [
        (round(off / sample_rate, 6), round((off + e.shape[-1]) / sample_rate, 6))
        for e, off in zip(events, offsets, strict=True)
    ]
    drawn = {
        "sources": [sources[i] for i in order],
        "noise": noise,
        "noise_start": round(start / sample_rate, 6),
        "noise_region": [round(edge / sample_rate, 6) for edge in region],
        "snr_db": round(snr_db, 3),
    }
    return wave, spans, drawn


def remix(
    clip: Clip, rng: np.random.Generator, sample_rate: int
) -> tuple[torch.Tensor, list[tuple[float, float]]]:
    """Re-draw a generated clip from its ``mix`` record: same sources, noise file, length
    and labels; fresh order, offsets, noise excerpt (from the clip's split's noise region
    only) and SNR (on-the-fly augmentation)."""
    mix = clip.mix
    if not mix or "sources" not in mix or "noise" not in mix:
        raise ManifestError(Path(clip.audio), f"clip {clip.id!r} has no noisy-mix record")
    wave, spans, _ = render_noisy(
        mix["sources"],
        [mix["noise"]],
        float(mix["length"]),
        tuple(mix["snr_range"]),
        sample_rate,
        rng,
        may_drop=False,
        split=clip.split,
    )
    return wave, spans


def _generate_one(job: NoisyJob, spec: NoisySpec, noises: Sequence[str], staging: Path):
    """Worker: one clip in, a Clip (its wav written to ``staging``) or a Skipped out."""
    torch.set_num_threads(1)
    paths = [str(source.path.resolve()) for source in job.sources]
    try:
        wave, spans, drawn = render_noisy(
            paths,
            noises,
            spec.length,
            spec.snr_db,
            spec.sample_rate,
            clip_rng(spec.seed, job.id),
            may_drop=True,
            split=job.split,
        )
    except AudioError as error:
        return Skipped(job.id, str(error.path), error.problem)
    save_audio(staging / f"{job.id}.wav", wave, spec.sample_rate)
    by_path = dict(zip(paths, job.sources, strict=True))
    labels = sorted({label for path in drawn["sources"] for label in by_path[path].labels})
    mix = {
        "generator": spec.generator,
        **drawn,
        "length": spec.length,
        "snr_range": list(spec.snr_db),
        "seed": spec.seed,
        "sample_rate": spec.sample_rate,
    }
    return Clip(
        id=job.id,
        audio=f"{AUDIO_DIR}/{job.id}.wav",
        labels=tuple(labels),
        split=job.split,
        duration=spec.samples / spec.sample_rate,
        events=tuple(spans),
        mix=mix,
        speaker=job.sources[0].speaker,
    )


def noisy_dataset(
    out: Path,
    jobs: Sequence[NoisyJob],
    noise: Path,
    spec: NoisySpec,
    labels: LabelSet,
    skipped: Sequence[Skipped],
    strict: bool,
    num_jobs: int = 1,
) -> Manifest:
    """Materialise every job as a wav under ``out/audio`` and write the manifest.

    Sources must already be probed (``skipped`` holds the bad ones). Audio is written to a
    staging folder beside ``out`` that replaces ``out/audio`` only once the whole dataset
    is good, so a refusal (strict mode) leaves ``out`` untouched.
    """
    if spec.snr_db[0] > spec.snr_db[1]:
        raise ValueError(f"snr_db range {spec.snr_db} must be (low, high)")
    if spec.length <= 0:
        raise ValueError(f"length must be positive, got {spec.length}")
    noises, bad_noise = probe_sources(
        (Source(f"noise:{p.stem}", p, (), "") for p in noise_files(noise)), "noise"
    )
    skipped = [*skipped, *bad_noise]
    refuse_if_strict(skipped, strict)
    if not noises:
        raise ManifestError(noise, "holds no usable noise audio (.wav/.flac/.ogg)")
    noise_paths = [str(source.path.resolve()) for source, _ in noises]

    staging = out.parent / f".{out.name}.{AUDIO_DIR}.partial"  # beside out: nothing in it yet
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        work = partial(_generate_one, spec=spec, noises=noise_paths, staging=staging)
        results = run_jobs(work, jobs, num_jobs, desc=spec.generator)
        clips = [r for r in results if isinstance(r, Clip)]
        skipped += [r for r in results if isinstance(r, Skipped)]
        refuse_if_strict(skipped, strict)
        if not clips:
            raise ManifestError(out, "no usable clips to write")
        Manifest(out, clips, labels)  # validate before replacing anything
        final = out / AUDIO_DIR
        shutil.rmtree(final, ignore_errors=True)
        out.mkdir(parents=True, exist_ok=True)
        os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return save_dataset(out, clips, labels, skipped)
