"""Deterministic augmented views of a clip, as pure functions.

Stage one runs the teacher on views 0..K-1 of every clip and caches its outputs per
(clip id, view); stage two replays the same views for the student. Both call
:func:`draw_view` for the parameters and :func:`apply` for the waveform, so the student
hears bit for bit what the teacher heard. View 0 is the clip as it is.

A view's parameters come only from (seed, clip id, view index), each augmentation from
its own random stream, so a view is the same whatever the order, the worker or the other
clips, and turning one augmentation on does not change the others' draws. Every enabled
augmentation applies to every view >= 1, in the order of :func:`apply`:

- ``remix``: a generated clip (one with a ``mix`` record) rebuilt from its own sources,
  at their original offsets, over another noise excerpt at another SNR; the caller says
  which noise may be used (:class:`NoiseRegion`), so each split keeps its own noise.
- ``mix``: another clip (chosen among ``partners`` the caller allows) added at a level
  relative to this one; its id is in the parameters, its labels are the caller's concern
  and its events move through the view like the clip's (:func:`map_events`).
- ``speed``: played ``r`` times as fast (duration / r, pitch x r, as sox's ``speed``),
  ``r`` on a grid of small-integer ratios: resampling between rates with large coprime
  terms is about 100x slower.
- ``shift``: moved later (positive) or earlier by whole milliseconds, zero-filled. Not
  circular: a wrapped shift would cut an event near an edge in two and put the end of
  the clip before its start; zero fill keeps one span per event, as TF's speech_commands
  time-shift does. Speed and shift are drawn so that known events stay inside the clip.
- ``gain``: a level change in dB (no clipping: waveforms are float).

A view keeps the clip's length: speed is followed by zero padding or cropping at the end,
so event times are moved by speed and shift only (:func:`map_event`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import torch
import torchaudio.functional as AF

from pipeline.data.audio import fit_length
from pipeline.data.manifest import Clip
from pipeline.data.recipes.common import stable_hash
from pipeline.data.recipes.noisy import looped_excerpt, mix_events

AUGMENTATIONS = ("speed", "shift", "gain", "remix", "mix")
# 0.85 .. 1.15 in steps of 0.05, as ratios whose terms stay small (fast polyphase resampling)
SPEED_RATES = tuple(
    (f.numerator, f.denominator) for f in (Fraction(n, 20) for n in range(17, 24))
)  # (17, 20), (9, 10), (19, 20), (1, 1), (21, 20), (11, 10), (23, 20)
VIEW_STREAM = 0x7669_6577  # "view": keeps view draws apart from the recipes' clip streams

AudioLoader = Callable[[str], torch.Tensor]  # path -> mono wave at the caller's sample rate
Span = tuple[float, float]


@dataclass(frozen=True)
class ViewSettings:
    """Which augmentations views use and their ranges; part of the teacher cache's key."""

    augment: tuple[str, ...] = ("speed", "shift", "gain")
    speed_rates: tuple[tuple[int, int], ...] = SPEED_RATES
    max_shift_s: float = 0.2
    gain_db: tuple[float, float] = (-6.0, 6.0)
    snr_db: tuple[float, float] | None = None  # None: the clip's own ``mix.snr_range``
    partner_db: tuple[float, float] = (-6.0, 0.0)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.augment) - set(AUGMENTATIONS))
        if unknown:
            raise ValueError(
                f"unknown augmentation(s) {', '.join(unknown)}; use {', '.join(AUGMENTATIONS)}"
            )
        if not self.speed_rates or any(n <= 0 or d <= 0 for n, d in self.speed_rates):
            raise ValueError(f"speed rates must be positive ratios, got {self.speed_rates}")
        if self.max_shift_s < 0:
            raise ValueError(f"max_shift_s must be >= 0, got {self.max_shift_s}")
        for name in ("gain_db", "snr_db", "partner_db"):
            low_high = getattr(self, name)
            if low_high is not None and low_high[0] > low_high[1]:
                raise ValueError(f"{name} {low_high} must be (low, high)")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ViewSettings:
        return cls(
            augment=tuple(data["augment"]),
            speed_rates=tuple((int(n), int(d)) for n, d in data["speed_rates"]),
            max_shift_s=float(data["max_shift_s"]),
            gain_db=_pair(data["gain_db"]),
            snr_db=_pair(data["snr_db"]) if data["snr_db"] is not None else None,
            partner_db=_pair(data["partner_db"]),
        )


@dataclass(frozen=True)
class NoiseRegion:
    """A stretch of a noise file that a split may draw remix noise from (seconds)."""

    path: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class NoiseDraw:
    """Remix: the noise excerpt (file, start) and the SNR over each event's span; the
    excerpt loops inside ``region_s`` (the split's noise region; None: the whole file)."""

    path: str
    start_s: float
    snr_db: float
    region_s: tuple[float, float] | None = None


@dataclass(frozen=True)
class PartnerDraw:
    """Mix: the other clip and its level relative to this one (RMS, dB)."""

    clip_id: str
    level_db: float


@dataclass(frozen=True)
class ViewParams:
    """Everything :func:`apply` needs to rebuild one view; JSON-serialisable."""

    clip_id: str
    view: int
    speed: tuple[int, int] = (1, 1)  # rate as (numerator, denominator)
    shift_s: float = 0.0  # whole milliseconds; positive = later
    gain_db: float = 0.0
    noise: NoiseDraw | None = None
    partner: PartnerDraw | None = None

    @property
    def rate(self) -> Fraction:
        return Fraction(*self.speed)

    @property
    def is_identity(self) -> bool:
        return (
            self.rate == 1
            and self.shift_s == 0
            and self.gain_db == 0
            and self.noise is None
            and self.partner is None
        )

    def shift_samples(self, sample_rate: int) -> int:
        return round(self.shift_s * sample_rate)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["speed"] = list(self.speed)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ViewParams:
        noise, partner = data.get("noise"), data.get("partner")
        return cls(
            clip_id=str(data["clip_id"]),
            view=int(data["view"]),
            speed=(int(data["speed"][0]), int(data["speed"][1])),
            shift_s=float(data["shift_s"]),
            gain_db=float(data["gain_db"]),
            noise=NoiseDraw(
                str(noise["path"]),
                float(noise["start_s"]),
                float(noise["snr_db"]),
                tuple(noise["region_s"]) if noise.get("region_s") else None,
            )
            if noise
            else None,
            partner=PartnerDraw(str(partner["clip_id"]), float(partner["level_db"]))
            if partner
            else None,
        )


def view_rng(seed: int, clip_id: str, view: int, augmentation: str) -> np.random.Generator:
    """The random stream of one augmentation of one view of one clip."""
    return np.random.default_rng(
        [seed, stable_hash(clip_id), VIEW_STREAM, view, stable_hash(augmentation)]
    )


def draw_view(
    clip: Clip,
    view: int,
    seed: int,
    settings: ViewSettings,
    noise_regions: Sequence[NoiseRegion] = (),
    partners: Iterable[str] = (),
) -> ViewParams:
    """The parameters of view ``view`` of ``clip``; view 0 is the identity.

    Randomness comes from (seed, clip id, view) only; the clip's record bounds the draws
    (its events keep the shift inside, its ``mix`` gives the SNR range). ``remix`` needs
    ``noise_regions`` (the noise this clip's split may use) and a clip with a ``mix``
    record; ``mix`` needs ``partners`` (clip ids it may be mixed with, itself excluded).
    """
    if view < 0:
        raise ValueError(f"view must be >= 0, got {view}")
    if view == 0:
        return ViewParams(clip.id, 0)

    def rng(name: str) -> np.random.Generator:
        return view_rng(seed, clip.id, view, name)

    drawn: dict[str, Any] = {}
    if "remix" in settings.augment:
        drawn["noise"] = _draw_noise(clip, settings, noise_regions, rng("remix"))
    if "mix" in settings.augment:
        candidates = sorted(set(partners) - {clip.id})
        if not candidates:
            raise ValueError(f"clip {clip.id!r}: 'mix' views need partner clips, none given")
        partner_rng = rng("mix")
        drawn["partner"] = PartnerDraw(
            candidates[int(partner_rng.integers(len(candidates)))],
            round(float(partner_rng.uniform(*settings.partner_db)), 2),
        )
    speed = (1, 1)
    if "speed" in settings.augment:
        rates = _rates_that_fit(clip, settings.speed_rates)
        speed = rates[int(rng("speed").integers(len(rates)))]
    if "shift" in settings.augment:
        low, high = _shift_bounds(clip, Fraction(*speed), settings.max_shift_s)
        drawn["shift_s"] = int(rng("shift").integers(low, high + 1)) / 1000
    if "gain" in settings.augment:
        drawn["gain_db"] = round(float(rng("gain").uniform(*settings.gain_db)), 2)
    return ViewParams(clip.id, view, speed=tuple(speed), **drawn)


def apply(
    wave: torch.Tensor,
    sample_rate: int,
    params: ViewParams,
    *,
    clip: Clip | None = None,
    load_audio: AudioLoader | None = None,
    partner_wave: torch.Tensor | None = None,
) -> torch.Tensor:
    """View ``params`` of the clip whose audio is ``wave`` [samples]; same length out.

    Remix views are rebuilt from the clip's sources rather than from ``wave``: they need
    the ``clip`` (its ``mix`` record and events) and ``load_audio`` for its sources and
    the noise. Mix views need the partner's audio (its view 0) as
    ``partner_wave``. Pure: ``wave`` is never modified, and the identity returns it.
    """
    if params.is_identity:
        return wave
    length = wave.shape[-1]
    if params.noise is not None:
        if clip is None or load_audio is None:
            raise ValueError(
                f"view {params.view} of {params.clip_id!r} re-mixes: pass clip and load_audio"
            )
        wave = fit_length(remix(clip, params.noise, sample_rate, load_audio), length)
    if params.partner is not None:
        if partner_wave is None:
            raise ValueError(
                f"view {params.view} of {params.clip_id!r} mixes in clip "
                f"{params.partner.clip_id!r}: pass its audio as partner_wave"
            )
        wave = mix_clips(wave, fit_length(partner_wave, length), params.partner.level_db)
    if params.rate != 1:
        wave = fit_length(change_speed(wave, params.speed), length)
    if params.shift_s:
        wave = shift(wave, params.shift_samples(sample_rate))
    if params.gain_db:
        wave = wave * 10 ** (params.gain_db / 20)
    return wave


def change_speed(wave: torch.Tensor, rate: tuple[int, int]) -> torch.Tensor:
    """Play ``wave`` ``numerator / denominator`` times as fast: ceil(samples / rate) out."""
    numerator, denominator = rate
    return AF.resample(wave, numerator, denominator)


def shift(wave: torch.Tensor, samples: int) -> torch.Tensor:
    """Move the audio ``samples`` later (earlier if negative), zero-filling the gap."""
    if samples == 0:
        return wave
    if abs(samples) >= wave.shape[-1]:
        return torch.zeros_like(wave)
    if samples > 0:
        return torch.nn.functional.pad(wave[..., :-samples], (samples, 0))
    return torch.nn.functional.pad(wave[..., -samples:], (0, -samples))


def mix_clips(wave: torch.Tensor, other: torch.Tensor, level_db: float) -> torch.Tensor:
    """``wave`` plus ``other`` scaled to ``level_db`` relative to ``wave``'s RMS;
    peak-normalised if the sum would clip, as the noisy recipes do."""
    power = wave.pow(2).mean().clamp_min(1e-10)
    other_power = other.pow(2).mean().clamp_min(1e-10)
    mixed = wave + other * torch.sqrt(power / other_power * 10 ** (level_db / 10))
    peak = mixed.abs().max()
    return mixed / peak * 0.95 if peak > 0.95 else mixed


def remix(clip: Clip, noise: NoiseDraw, sample_rate: int, load_audio: AudioLoader) -> torch.Tensor:
    """A generated clip rebuilt from its ``mix`` record: its sources at their recorded
    spans (centre-cropped to them, as the recipe fitted them) over ``noise``."""
    mix = clip.mix
    if not mix or "sources" not in mix or "length" not in mix:
        raise ValueError(f"clip {clip.id!r} has no noisy-mix record to re-mix")
    if len(mix["sources"]) != len(clip.events):
        raise ValueError(
            f"clip {clip.id!r}: its mix record lists {len(mix['sources'])} sources "
            f"for {len(clip.events)} events"
        )
    samples = round(float(mix["length"]) * sample_rate)
    offsets = [round(onset * sample_rate) for onset, _ in clip.events]
    ends = [round(offset * sample_rate) for _, offset in clip.events]
    events = [
        fit_length(load_audio(path), end - start, "center")
        for path, start, end in zip(mix["sources"], offsets, ends, strict=True)
    ]
    bed = load_audio(noise.path)
    low, high = noise.region_s or (0.0, bed.shape[-1] / sample_rate)
    region = (round(low * sample_rate), round(high * sample_rate))
    excerpt = looped_excerpt(bed, round(noise.start_s * sample_rate), samples, region)
    return mix_events(events, offsets, excerpt, noise.snr_db)


def map_event(span: Span, params: ViewParams, duration: float) -> Span | None:
    """Where an event (onset_s, offset_s) of the clip is in the view: divided by the
    speed, moved by the shift, cut to [0, duration]; None if it left the clip."""
    rate = float(params.rate)
    onset = min(max(span[0] / rate + params.shift_s, 0.0), duration)
    offset = min(max(span[1] / rate + params.shift_s, 0.0), duration)
    return (onset, offset) if offset > onset else None


def map_events(events: Iterable[Span], params: ViewParams, duration: float) -> list[Span]:
    """:func:`map_event` over a clip's events, dropping those the view pushed out."""
    return [m for m in (map_event(span, params, duration) for span in events) if m]


def _draw_noise(
    clip: Clip,
    settings: ViewSettings,
    regions: Sequence[NoiseRegion],
    rng: np.random.Generator,
) -> NoiseDraw:
    if not clip.mix or "snr_range" not in clip.mix:
        raise ValueError(f"clip {clip.id!r} has no noisy-mix record: it cannot be re-mixed")
    if not regions:
        raise ValueError(f"clip {clip.id!r}: 'remix' views need noise regions, none given")
    region = regions[int(rng.integers(len(regions)))]
    latest = max(region.end_s - float(clip.mix["length"]), region.start_s)
    start = round(float(rng.uniform(region.start_s, latest)), 3)
    low, high = settings.snr_db or clip.mix["snr_range"]
    snr = round(float(rng.uniform(low, high)), 3)
    return NoiseDraw(region.path, start, snr, (region.start_s, region.end_s))


def _rates_that_fit(clip: Clip, rates: Sequence[tuple[int, int]]) -> Sequence[tuple[int, int]]:
    """The rates at which the clip's events, first onset to last offset, still fit in the
    clip (a slow-down stretches them), so a shift can keep them whole; all if none do."""
    if not clip.events:
        return rates
    extent = max(off for _, off in clip.events) - min(on for on, _ in clip.events)
    fitting = [rate for rate in rates if extent * rate[1] / rate[0] <= clip.duration]
    return fitting or rates


def _shift_bounds(clip: Clip, rate: Fraction, max_shift_s: float) -> tuple[int, int]:
    """Shift range in whole ms: within ``max_shift_s`` and, when the clip's events are
    known, keeping every event (after the speed change) inside the clip."""
    low = high = round(max_shift_s * 1000)
    low = -low
    if clip.events:
        first = min(on for on, _ in clip.events) / float(rate)
        last = max(off for _, off in clip.events) / float(rate)
        low = max(low, -math.floor(first * 1000))
        high = min(high, math.floor((clip.duration - last) * 1000))
    return (low, high) if low <= high else (0, 0)


def _pair(value: Sequence[float]) -> tuple[float, float]:
    low, high = value
    return float(low), float(high)
