"""Student front ends: log-mel or MFCC frames from torchaudio.

Defaults follow kws_streaming, through which the temporal-KD paper trains every student:
40 log-mel bands over 40 ms windows with a 20 ms hop. One front end for all students keeps
a comparison between them about the architecture. TC-ResNet's own paper used 40 MFCCs
over 30 ms windows with a 10 ms hop: :data:`TC_RESNET_PAPER` (twice the frames). The
front end is an ``nn.Module`` so an exported student can carry it in its graph
(waveform in, scores out).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torchaudio.transforms as T
from torch import nn

FEATURE_KINDS = ("logmel", "mfcc")


@dataclass(frozen=True)
class FeatureConfig:
    kind: str = "logmel"
    sample_rate: int = 16_000
    window_ms: float = 40.0
    hop_ms: float = 20.0
    n_mels: int = 40
    n_mfcc: int = 40

    def __post_init__(self) -> None:
        if self.kind not in FEATURE_KINDS:
            raise ValueError(f"unknown feature kind {self.kind!r}; use one of {FEATURE_KINDS}")

    @property
    def hop_length(self) -> int:
        return round(self.sample_rate * self.hop_ms / 1000)

    @property
    def win_length(self) -> int:
        return round(self.sample_rate * self.window_ms / 1000)

    @property
    def dim(self) -> int:
        return self.n_mels if self.kind == "logmel" else self.n_mfcc

    def frames(self, samples: int) -> int:
        """Number of frames for a clip of ``samples`` samples (centred STFT)."""
        return samples // self.hop_length + 1

    def to_json(self) -> dict:
        return asdict(self)


TC_RESNET_PAPER = FeatureConfig(kind="mfcc", window_ms=30.0, hop_ms=10.0)


class FrontEnd(nn.Module):
    """Waveform [batch, samples] -> features [batch, frames, dim]."""

    def __init__(self, config: FeatureConfig):
        super().__init__()
        self.config = config
        n_fft = 1 << (config.win_length - 1).bit_length()
        mel_kwargs = dict(
            sample_rate=config.sample_rate,
            n_fft=n_fft,
            win_length=config.win_length,
            hop_length=config.hop_length,
            n_mels=config.n_mels,
        )
        if config.kind == "logmel":
            self.transform = T.MelSpectrogram(**mel_kwargs)
        else:
            self.transform = T.MFCC(
                sample_rate=config.sample_rate,
                n_mfcc=config.n_mfcc,
                melkwargs={k: v for k, v in mel_kwargs.items() if k != "sample_rate"},
            )

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        features = self.transform(wave)
        if self.config.kind == "logmel":
            features = torch.log(features + 1e-6)
        return features.transpose(-1, -2)
