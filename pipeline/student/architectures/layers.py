"""Building blocks shared by the students, so no architecture re-implements another's."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class PeepholeLSTM(nn.Module):
    """One LSTM layer with peepholes and a projection, as TF's ``LSTMCell(use_peepholes=True,
    num_proj=P)`` that kws_streaming's ``lstm`` model uses; torch's ``nn.LSTM`` has the
    projection but no peepholes.

    [batch, frames, input_size] -> projected outputs [batch, frames, proj_size]. The input
    half of the gate matmul runs once over all frames; only the recurrent half loops. The
    forget-gate bias starts at 1 (TF's ``forget_bias``) and the peepholes at 0, so
    training starts from a plain projected LSTM.
    """

    def __init__(self, input_size: int, hidden_size: int, proj_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.proj_size = proj_size
        self.input_gates = nn.Linear(input_size, 4 * hidden_size)
        self.recurrent_gates = nn.Linear(proj_size, 4 * hidden_size, bias=False)
        self.peephole_input = nn.Parameter(torch.zeros(hidden_size))
        self.peephole_forget = nn.Parameter(torch.zeros(hidden_size))
        self.peephole_output = nn.Parameter(torch.zeros(hidden_size))
        self.projection = nn.Linear(hidden_size, proj_size, bias=False)
        nn.init.xavier_uniform_(self.input_gates.weight)
        nn.init.orthogonal_(self.recurrent_gates.weight)
        with torch.no_grad():
            self.input_gates.bias.zero_()
            self.input_gates.bias[hidden_size : 2 * hidden_size] = 1.0

    def forward(self, x: Tensor) -> Tensor:
        batch = x.size(0)
        gates_x = self.input_gates(x)
        h = x.new_zeros(batch, self.proj_size)
        c = x.new_zeros(batch, self.hidden_size)
        outputs: list[Tensor] = []
        for t in range(x.size(1)):
            gates = gates_x[:, t] + self.recurrent_gates(h)
            i, f, g, o = gates.chunk(4, 1)
            i = torch.sigmoid(i + self.peephole_input * c)
            f = torch.sigmoid(f + self.peephole_forget * c)
            c = f * c + i * torch.tanh(g)
            o = torch.sigmoid(o + self.peephole_output * c)
            h = self.projection(o * torch.tanh(c))
            outputs.append(h)
        return torch.stack(outputs, dim=1)


class RecurrentSequence(nn.Module):
    """A batch-first ``nn.LSTM`` or ``nn.GRU`` that returns only its output sequence,
    so a forward hook on it sees one tensor [batch, frames, units x directions]."""

    def __init__(
        self,
        kind: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
    ):
        super().__init__()
        cells = {"lstm": nn.LSTM, "gru": nn.GRU}
        self.rnn = cells[kind](
            input_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
        )
        self.output_size = hidden_size * (2 if bidirectional else 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.rnn(x)[0]


class SwapTimeChannels(nn.Module):
    """[batch, a, b] -> [batch, b, a]: between the features' time-major layout and
    Conv1d's channels-first one. A module so a hook can read the time-major side."""

    def forward(self, x: Tensor) -> Tensor:
        return x.transpose(1, 2)


class Conv2dFront(nn.Module):
    """kws_streaming's 2-D conv front: (time x frequency) convolutions with ReLU, each
    optionally followed by batch norm, then channels folded into the feature axis.

    [batch, frames, feature_dim] -> [batch, out_frames, out_dim]; the folded order is
    (frequency, channel), as Keras' ``Reshape`` after ``Conv2D`` gives it.
    """

    def __init__(
        self,
        filters: Sequence[int],
        kernels: Sequence[tuple[int, int]],
        same_padding: bool,
        batch_norm: bool,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 1
        for out_channels, kernel in zip(filters, kernels, strict=True):
            padding = (kernel[0] // 2, kernel[1] // 2) if same_padding else (0, 0)
            layers += [nn.Conv2d(in_channels, out_channels, kernel, padding=padding), nn.ReLU()]
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            in_channels = out_channels
        self.layers = nn.Sequential(*layers)
        self.out_channels = in_channels
        self._shrink = (
            (0, 0) if same_padding else tuple(sum(k[a] - 1 for k in kernels) for a in (0, 1))
        )

    def out_frames(self, num_frames: int) -> int:
        return num_frames - self._shrink[0]

    def out_dim(self, feature_dim: int) -> int:
        return (feature_dim - self._shrink[1]) * self.out_channels

    def forward(self, features: Tensor) -> Tensor:
        x = self.layers(features.unsqueeze(1))
        return x.permute(0, 2, 3, 1).flatten(2)


class SoftmaxOverTime(nn.Module):
    """Attention weights [batch, heads, frames] = softmax_t(query_h . sequence_t).

    Its own module so a forward hook captures exactly the weights the model pools with.
    """

    def forward(self, query: Tensor, sequence: Tensor) -> Tensor:
        return torch.softmax(torch.bmm(query, sequence.transpose(1, 2)), dim=-1)


class MiddleQueryAttention(nn.Module):
    """kws_streaming's attention pooling: each head's query is a dense projection of the
    middle step of the sequence; its softmax-over-time weights pool the sequence.

    [batch, frames, dim] -> [batch, heads x dim] (heads concatenated, as in att_mh_rnn).
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.dim = dim
        self.heads = heads
        self.query = nn.Linear(dim, heads * dim)
        self.weights = SoftmaxOverTime()

    def forward(self, sequence: Tensor) -> Tensor:
        middle = sequence[:, sequence.size(1) // 2]
        query = self.query(middle).view(-1, self.heads, self.dim)
        weights = self.weights(query, sequence)
        return torch.bmm(weights, sequence).flatten(1)


class DenseHead(nn.Sequential):
    """Dropout, then dense layers (each with or without ReLU), then the classifier: the
    tail every kws_streaming student ends with."""

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[tuple[int, bool]],
        dropout: float,
        num_classes: int,
        classifier_bias: bool = True,
    ):
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        for units, relu in hidden:
            layers.append(nn.Linear(in_dim, units))
            if relu:
                layers.append(nn.ReLU())
            in_dim = units
        layers.append(nn.Linear(in_dim, num_classes, bias=classifier_bias))
        super().__init__(*layers)
