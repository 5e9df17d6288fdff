"""Att-RNN and MHAtt-RNN: kws_streaming's ``att_rnn`` and ``att_mh_rnn`` with their
defaults. They differ only in RNN cell, width, head count and dropout, so both are one
class with two sets of defaults."""

from __future__ import annotations

from torch import Tensor

from .base import StudentModel
from .layers import Conv2dFront, DenseHead, MiddleQueryAttention, RecurrentSequence


class AttentionRNN(StudentModel):
    """Conv2D 10 (5x1) + BN, Conv2D 1 (5x1) + BN ('same'), two bidirectional RNN layers,
    middle-step-query attention pooling, dropout, dense 64 (ReLU), dense 32 (linear),
    classifier.

    The model's own attention weights [batch, heads, frames] are the output of
    ``attention.weights``; distillation averages them over heads.
    """

    has_attention = True
    temporal_module = "attention.weights"

    def __init__(
        self,
        num_classes: int,
        feature_dim: int,
        *,
        rnn: str,
        units: int,
        heads: int,
        dropout: float,
    ):
        super().__init__()
        self.front = Conv2dFront((10, 1), ((5, 1), (5, 1)), same_padding=True, batch_norm=True)
        self.rnn = RecurrentSequence(
            rnn, self.front.out_dim(feature_dim), units, num_layers=2, bidirectional=True
        )
        self.context_dim = self.rnn.output_size
        self.attention = MiddleQueryAttention(self.context_dim, heads)
        self.head = DenseHead(
            heads * self.context_dim, ((64, True), (32, False)), dropout, num_classes
        )

    def time_steps(self, num_frames: int) -> int:
        return self.front.out_frames(num_frames)

    def forward(self, features: Tensor) -> Tensor:
        return self.head(self.attention(self.rnn(self.front(features))))


class AttRNN(AttentionRNN):
    """Att-RNN (de Andrade et al. 2018 as in kws_streaming): 2x BiLSTM 64, one head,
    dropout 0.5."""

    def __init__(
        self, num_classes: int, feature_dim: int = 40, units: int = 64, dropout: float = 0.5
    ):
        super().__init__(
            num_classes, feature_dim, rnn="lstm", units=units, heads=1, dropout=dropout
        )


class MHAttRNN(AttentionRNN):
    """MHAtt-RNN: 2x BiGRU 128, 4 heads (concatenated), dropout 0.2.

    The paper does not say how its four heads meet the teacher's single temporal vector;
    we distil into the head-averaged weights, which leaves each head free to specialise
    while their mean follows the teacher.
    """

    def __init__(
        self,
        num_classes: int,
        feature_dim: int = 40,
        units: int = 128,
        heads: int = 4,
        dropout: float = 0.2,
    ):
        super().__init__(
            num_classes, feature_dim, rnn="gru", units=units, heads=heads, dropout=dropout
        )
