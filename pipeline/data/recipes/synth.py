"""The embedded default dataset: deterministic synthetic sound events in coloured noise.

Each class is its own spectro-temporal pattern (chirps, harmonic stacks, AM tones,
click trains, ...), drawn with random variation, placed at a random offset inside an
L-second clip of coloured noise at a random SNR. Because the event is short and its
position varies, a classifier must find *when* it happens: the situation temporal
attention distillation is for. Needs nothing outside the project.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.data.audio import mix_at_snr, resample, save_audio
from pipeline.data.manifest import Clip, LabelSet, Manifest
from pipeline.progress import progress

PATTERNS = (
    "up-chirp",
    "down-chirp",
    "harmonic-stack",
    "am-tone",
    "click-train",
    "fm-vibrato",
    "two-tone-trill",
    "noise-burst",
)


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines the generated data (recorded in each clip's ``mix``)."""

    num_classes: int = 6
    patterns: tuple[str, ...] = ()  # which patterns are the classes; default: the first K
    length: float = 2.0
    sample_rate: int = 16_000
    snr_db: tuple[float, float] = (-3.0, 6.0)
    event_seconds: tuple[float, float] = (0.2, 0.4)
    seed: int = 0

    def __post_init__(self) -> None:
        if not 2 <= self.num_classes <= len(PATTERNS):
            raise ValueError(f"num_classes must be 2..{len(PATTERNS)}, got {self.num_classes}")
        unknown = [p for p in self.patterns if p not in PATTERNS]
        if unknown or (self.patterns and len(self.patterns) != self.num_classes):
            raise ValueError(
                f"patterns must be {self.num_classes} of {', '.join(PATTERNS)}; got {self.patterns}"
            )
        if self.length <= self.event_seconds[1]:
            raise ValueError(f"length {self.length}s must exceed the longest event")

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.patterns) or PATTERNS[: self.num_classes]


def synth_event(pattern: str, seconds: float, rng: np.random.Generator, rate: int) -> np.ndarray:
    """One instance of a class's pattern, Hann-enveloped, unit peak."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = rng.uniform(300, 900)
    if pattern == "up-chirp":
        f1 = f0 * rng.uniform(2.5, 4.0)
        wave = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds)))
    elif pattern == "down-chirp":
        f1 = f0 * rng.uniform(2.5, 4.0)
        wave = np.sin(2 * np.pi * (f1 * t - (f1 - f0) * t**2 / (2 * seconds)))
    elif pattern == "harmonic-stack":
        wave = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))
    elif pattern == "am-tone":
        carrier = f0 * rng.uniform(1.5, 3.0)
        wave = np.sin(2 * np.pi * carrier * t) * (1 + np.sin(2 * np.pi * rng.uniform(12, 25) * t))
    elif pattern == "click-train":
        wave = np.zeros_like(t)
        period = int(rate / rng.uniform(20, 40))
        click = np.hanning(int(0.002 * rate)) * np.sin(2 * np.pi * 3000 * t[: int(0.002 * rate)])
        for start in range(0, len(t) - len(click), period):
            wave[start : start + len(click)] += click
    elif pattern == "fm-vibrato":
        depth, speed = rng.uniform(80, 200), rng.uniform(6, 12)
        wave = np.sin(2 * np.pi * f0 * 2 * t + depth / speed * np.sin(2 * np.pi * speed * t))
    elif pattern == "two-tone-trill":
        low, high = f0 * 1.5, f0 * 2.5
        gate = (np.floor(t * rng.uniform(10, 16) * 2) % 2).astype(bool)
        wave = np.where(gate, np.sin(2 * np.pi * high * t), np.sin(2 * np.pi * low * t))
    elif pattern == "noise-burst":
        spectrum = np.fft.rfft(rng.standard_normal(len(t)))
        freqs = np.fft.rfftfreq(len(t), 1 / rate)
        centre = rng.uniform(2000, 4000)
        spectrum[np.abs(freqs - centre) > 400] = 0
        wave = np.fft.irfft(spectrum, n=len(t))
    else:
        raise ValueError(f"unknown pattern {pattern!r}")
    wave = wave * np.hanning(len(t))
    return (wave / max(np.abs(wave).max(), 1e-9)).astype(np.float32)


def coloured_noise(samples: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with a 1/f^exponent power spectrum (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    freqs = np.fft.rfftfreq(samples)
    freqs[0] = freqs[1]
    noise = np.fft.irfft(spectrum / freqs ** (exponent / 2), n=samples)
    return (noise / noise.std()).astype(np.float32) * 0.1


def synth_clip(
    class_index: int, rng: np.random.Generator, config: SynthConfig
) -> tuple[torch.Tensor, tuple[float, float], dict]:
    """A fresh clip of one class: (waveform, (onset_s, offset_s), how it was mixed)."""
    rate = config.sample_rate
    seconds = rng.uniform(*config.event_seconds)
    event = synth_event(config.classes[class_index], seconds, rng, rate)
    total = int(config.length * rate)
    offset = int(rng.integers(0, total - len(event)))
    snr = float(rng.uniform(*config.snr_db))
    exponent = float(rng.choice([0.0, 1.0, 2.0]))
    noise = coloured_noise(total, exponent, rng)
    wave = mix_at_snr(torch.from_numpy(event), torch.from_numpy(noise), offset, snr)
    span = (offset / rate, (offset + len(event)) / rate)
    mix = {
        "generator": "synth",
        "class": class_index,
        "snr_db": round(snr, 3),
        "noise_exponent": exponent,
        "config": asdict(config),
    }
    return wave, span, mix


def remix_synth(
    clip: Clip, rng: np.random.Generator, sample_rate: int
) -> tuple[torch.Tensor, list[tuple[float, float]]]:
    """Draw a new instance of the clip's class (new event, offset, noise and SNR)."""
    settings = dict(clip.mix["config"])
    for name in ("snr_db", "event_seconds", "patterns"):  # JSON turned the tuples into lists
        settings[name] = tuple(settings.get(name, ()))
    config = SynthConfig(**settings)
    wave, span, _ = synth_clip(clip.mix["class"], rng, config)
    return resample(wave, config.sample_rate, sample_rate), [span]


def prepare_synth(
    out: str | Path,
    config: SynthConfig = SynthConfig(),
    clips_per_class: tuple[int, int, int] = (60, 15, 15),
) -> Manifest:
    """Generate the dataset into ``out`` (wavs under ``audio/``); same seed, same bytes.

    ``clips_per_class`` is the (train, valid, test) count for every class.
    """
    counts = tuple(clips_per_class)
    if len(counts) != 3 or min(counts) < 0 or min(counts[:2]) < 1:
        raise ValueError(
            f"clips_per_class must be (train, valid, test) counts with train and valid at "
            f"least 1, got {counts}"
        )
    out = Path(out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    names = config.classes
    jobs = [
        (split, class_index, number)
        for split, count in zip(("train", "valid", "test"), counts, strict=True)
        for class_index in range(config.num_classes)
        for number in range(count)
    ]
    clips = []
    for split, class_index, number in progress(jobs, desc="synth", unit="clip", leave=False):
        clip_id = f"{split}-{names[class_index]}-{number:04d}"
        rng = np.random.default_rng(
            [config.seed, class_index, ("train", "valid", "test").index(split), number]
        )
        wave, span, mix = synth_clip(class_index, rng, config)
        relative = f"audio/{clip_id}.wav"
        save_audio(out / relative, wave, config.sample_rate)
        clips.append(
            Clip(clip_id, relative, (names[class_index],), split, config.length, (span,), mix)
        )
    manifest = Manifest(out, clips, LabelSet(tuple(names), multi_label=False))
    manifest.save()
    return manifest
