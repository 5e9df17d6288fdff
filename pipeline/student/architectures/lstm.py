"""LSTM-P: kws_streaming's ``lstm`` model with its defaults (peepholes, projection)."""

from __future__ import annotations

from torch import Tensor

from .base import StudentModel
from .layers import DenseHead, PeepholeLSTM


class LSTMP(StudentModel):
    """Peephole LSTM (500 units, projection 200), last output, dropout 0.3, dense.

    The projected output sequence [batch, frames, 200] is the context the auxiliary
    attention head reads.
    """

    temporal_module = "lstm"

    def __init__(
        self,
        num_classes: int,
        feature_dim: int = 40,
        units: int = 500,
        proj_size: int = 200,
        dropout: float = 0.3,
    ):
        super().__init__()
        self.context_dim = proj_size
        self.lstm = PeepholeLSTM(feature_dim, units, proj_size)
        self.head = DenseHead(proj_size, (), dropout, num_classes)

    def time_steps(self, num_frames: int) -> int:
        return num_frames

    def forward(self, features: Tensor) -> Tensor:
        return self.head(self.lstm(features)[:, -1])
