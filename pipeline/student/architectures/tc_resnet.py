"""TC-ResNet8 / TC-ResNet14 (Choi et al. 2019), as in hyperconnect/TC-ResNet."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import StudentModel
from .layers import DenseHead, SwapTimeChannels


def _conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int) -> list[nn.Module]:
    """Bias-free conv + BN, as slim's conv2d with a normalizer (the original's default)."""
    return [
        nn.Conv1d(in_channels, out_channels, kernel, stride, padding=kernel // 2, bias=False),
        nn.BatchNorm1d(out_channels),
    ]


class ResidualBlock(nn.Module):
    """Two 9-wide temporal convs; stride 2 and a 1x1 shortcut when the width changes.

    As in the original, the shortcut conv carries BN and ReLU too (slim's defaults).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 9):
        super().__init__()
        stride = 1 if in_channels == out_channels else 2
        self.body = nn.Sequential(
            *_conv_bn(in_channels, out_channels, kernel, stride),
            nn.ReLU(),
            *_conv_bn(out_channels, out_channels, kernel, 1),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1
            else nn.Sequential(*_conv_bn(in_channels, out_channels, 1, stride), nn.ReLU())
        )
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class TCResNet(StudentModel):
    """Features as channels, conv 3 (16 x width), residual blocks, global average pooling
    over time, dropout 0.5, bias-free classifier.

    The time-major map before pooling, [batch, T', channels], is the context the
    auxiliary attention head reads; T' halves (rounding up) at each widening block.

    Front end: whatever the run gives every student; by default tkd's shared 40 log-mels
    over 40 ms windows with a 20 ms hop (kws_streaming's, as the temporal-KD paper used),
    so TC-ResNet8 sees 101 frames and 13 time steps at 2 s. The TC-ResNet paper fed 40
    MFCCs over 30 ms windows with a 10 ms hop (``features.TC_RESNET_PAPER``: 201 frames,
    26 time steps at 2 s); the architecture is the same for either.
    """

    channels: tuple[int, ...]
    temporal_module = "to_sequence"

    def __init__(
        self,
        num_classes: int,
        feature_dim: int = 40,
        width_multiplier: float = 1.0,
        dropout: float = 0.5,
    ):
        super().__init__()
        widths = [int(c * width_multiplier) for c in self.channels]
        self.to_channels = SwapTimeChannels()
        self.stem = nn.Sequential(*_conv_bn(feature_dim, widths[0], 3, 1), nn.ReLU())
        self.blocks = nn.Sequential(*(ResidualBlock(a, b) for a, b in zip(widths[:-1], widths[1:])))
        self.to_sequence = SwapTimeChannels()
        self.context_dim = widths[-1]
        self.head = DenseHead(widths[-1], (), dropout, num_classes, classifier_bias=False)

    def time_steps(self, num_frames: int) -> int:
        for block in self.blocks:
            num_frames = (num_frames + block.stride - 1) // block.stride
        return num_frames

    def forward(self, features: Tensor) -> Tensor:
        x = self.blocks(self.stem(self.to_channels(features)))
        return self.head(self.to_sequence(x).mean(1))


class TCResNet8(TCResNet):
    """Three blocks, widths [16, 24, 32, 48]: 65,168 parameters at 40 features and 12
    classes (the paper reports 66K)."""

    channels = (16, 24, 32, 48)


class TCResNet14(TCResNet):
    """Six blocks, widths [16, 24, 24, 32, 32, 48, 48]: 135,856 parameters at 40 features
    and 12 classes (the paper reports 137K)."""

    channels = (16, 24, 24, 32, 32, 48, 48)
