"""CRNN: kws_streaming's ``crnn`` model with its defaults."""

from __future__ import annotations

from torch import Tensor

from .base import StudentModel
from .layers import Conv2dFront, DenseHead, RecurrentSequence


class CRNN(StudentModel):
    """Conv2D 16 (3x3) and Conv2D 16 (5x3), both 'valid' with ReLU; GRU 256, last output;
    dropout 0.1; dense 128 (linear), dense 256 (ReLU), classifier.

    The GRU's output sequence [batch, frames - 6, 256] is the context the auxiliary
    attention head reads.
    """

    temporal_module = "gru"

    def __init__(
        self,
        num_classes: int,
        feature_dim: int = 40,
        filters: tuple[int, ...] = (16, 16),
        kernels: tuple[tuple[int, int], ...] = ((3, 3), (5, 3)),
        gru_units: int = 256,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.context_dim = gru_units
        self.front = Conv2dFront(filters, kernels, same_padding=False, batch_norm=False)
        self.gru = RecurrentSequence("gru", self.front.out_dim(feature_dim), gru_units)
        self.head = DenseHead(gru_units, ((128, False), (256, True)), dropout, num_classes)

    def time_steps(self, num_frames: int) -> int:
        return self.front.out_frames(num_frames)

    def forward(self, features: Tensor) -> Tensor:
        return self.head(self.gru(self.front(features))[:, -1])
