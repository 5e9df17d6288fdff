"""Building blocks shared by the students, so no architecture re-implements another's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn


def peephole_cell(
    gates: Tensor,
    c: Tensor,
    peephole_input: Tensor,
    peephole_forget: Tensor,
    peephole_output: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """One step of TF's peephole LSTM cell from its pre-activation gates [batch, 4 x units]
    and the previous cell state: (input, forget, candidate, output gates, new cell state).
    The one statement of the cell's math, shared by the loop and the fused recurrence."""
    i, f, g, o = gates.chunk(4, 1)
    i = torch.sigmoid(i + peephole_input * c)
    f = torch.sigmoid(f + peephole_forget * c)
    g = torch.tanh(g)
    c = f * c + i * g
    o = torch.sigmoid(o + peephole_output * c)
    return i, f, g, o, c


class PeepholeRecurrence(torch.autograd.Function):
    """The recurrence over all frames with a hand-written backward.

    Autograd through a per-frame loop is slow on CPU for two reasons: every
    ``gates_x[:, t]`` gets its own backward that zero-fills a full [batch, frames, 4 x units]
    gradient (quadratic in frames), and every step adds two weight-gradient matmuls. Here
    the backward loop only carries the state gradients; the recurrent and projection weight
    gradients are one matmul each over all frames. Same math as the loop, to float
    round-off (tests/student/architectures/test_peephole_lstm.py).
    """

    @staticmethod
    def forward(
        ctx: Any,
        gates_x: Tensor,
        recurrent: Tensor,
        peephole_input: Tensor,
        peephole_forget: Tensor,
        peephole_output: Tensor,
        projection: Tensor,
    ) -> Tensor:
        batch, frames, _ = gates_x.shape
        units, proj_size = projection.shape[1], projection.shape[0]
        inputs = gates_x.transpose(0, 1)
        recurrent_t, projection_t = recurrent.t().contiguous(), projection.t().contiguous()
        # h_{t-1} and c_{t-1} for t = 0..frames (index 0 is the zero initial state)
        h = gates_x.new_zeros(frames + 1, batch, proj_size)
        c = gates_x.new_zeros(frames + 1, batch, units)
        acts = gates_x.new_empty(frames, batch, 4 * units)  # i, f, g, o after activation
        tanh_c = gates_x.new_empty(frames, batch, units)
        for t in range(frames):
            gates = torch.addmm(inputs[t], h[t], recurrent_t)
            i, f, g, o, c[t + 1] = peephole_cell(
                gates, c[t], peephole_input, peephole_forget, peephole_output
            )
            torch.cat((i, f, g, o), 1, out=acts[t])
            torch.tanh(c[t + 1], out=tanh_c[t])
            torch.mm(o * tanh_c[t], projection_t, out=h[t + 1])
        ctx.save_for_backward(
            recurrent,
            peephole_input,
            peephole_forget,
            peephole_output,
            projection,
            h,
            c,
            acts,
            tanh_c,
        )
        return h[1:].transpose(0, 1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, ...]:
        weights, (h, c, acts, tanh_c) = ctx.saved_tensors[:5], ctx.saved_tensors[5:]
        recurrent, peephole_input, peephole_forget, peephole_output, projection = weights
        frames = acts.shape[0]
        grad_h_out = grad_out.transpose(0, 1)
        grad_h = torch.empty_like(h[1:])  # total gradient reaching each h_t
        grad_gates = torch.empty_like(acts)
        carry_h = torch.zeros_like(h[0])
        carry_c = torch.zeros_like(c[0])
        for t in range(frames - 1, -1, -1):
            torch.add(grad_h_out[t], carry_h, out=grad_h[t])
            i, f, g, o = acts[t].chunk(4, 1)
            grad_m = grad_h[t] @ projection
            grad_zo = grad_m * tanh_c[t] * o * (1 - o)
            grad_c = carry_c + grad_m * o * (1 - tanh_c[t] * tanh_c[t]) + grad_zo * peephole_output
            grad_zi = grad_c * g * i * (1 - i)
            grad_zf = grad_c * c[t] * f * (1 - f)
            grad_zg = grad_c * i * (1 - g * g)
            torch.cat((grad_zi, grad_zf, grad_zg, grad_zo), 1, out=grad_gates[t])
            carry_c = grad_c * f + grad_zi * peephole_input + grad_zf * peephole_forget
            carry_h = grad_gates[t] @ recurrent
        flat_gates = grad_gates.flatten(0, 1)
        o = acts.chunk(4, 2)[3]
        grad_zi, grad_zf, _, grad_zo = grad_gates.chunk(4, 2)
        memory = (o * tanh_c).flatten(0, 1)
        return (
            grad_gates.transpose(0, 1),
            flat_gates.t() @ h[:-1].flatten(0, 1),
            (grad_zi * c[:-1]).sum((0, 1)),
            (grad_zf * c[:-1]).sum((0, 1)),
            (grad_zo * c[1:]).sum((0, 1)),
            grad_h.flatten(0, 1).t() @ memory,
        )


class PeepholeLSTM(nn.Module):
    """One LSTM layer with peepholes and a projection, as TF's ``LSTMCell(use_peepholes=True,
    num_proj=P)`` that kws_streaming's ``lstm`` model uses; torch's ``nn.LSTM`` has the
    projection but no peepholes.

    [batch, frames, input_size] -> projected outputs [batch, frames, proj_size]. The input
    half of the gate matmul runs once over all frames; only the recurrent half loops. The
    forget-gate bias starts at 1 (TF's ``forget_bias``) and the peepholes at 0, so
    training starts from a plain projected LSTM.

    Training (gradients on) runs :class:`PeepholeRecurrence`; inference, TorchScript
    (scripted or traced) and ONNX export run the plain loop through the ``Linear``
    modules, which dynamic int8 quantization can replace.
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
        gates_x = self.input_gates(x)
        if torch.jit.is_scripting():
            return self.loop(gates_x)
        exporting = torch.jit.is_tracing() or torch.compiler.is_compiling()
        if torch.is_grad_enabled() and not exporting:
            return self.fused(gates_x)
        return self.loop(gates_x)

    def loop(self, gates_x: Tensor) -> Tensor:
        h = gates_x.new_zeros(gates_x.size(0), self.proj_size)
        c = gates_x.new_zeros(gates_x.size(0), self.hidden_size)
        outputs: list[Tensor] = []
        for t in range(gates_x.size(1)):
            _, _, _, o, c = peephole_cell(
                gates_x[:, t] + self.recurrent_gates(h),
                c,
                self.peephole_input,
                self.peephole_forget,
                self.peephole_output,
            )
            h = self.projection(o * torch.tanh(c))
            outputs.append(h)
        return torch.stack(outputs, dim=1)

    @torch.jit.unused
    def fused(self, gates_x: Tensor) -> Tensor:
        return PeepholeRecurrence.apply(
            gates_x,
            self.recurrent_gates.weight,
            self.peephole_input,
            self.peephole_forget,
            self.peephole_output,
            self.projection.weight,
        )


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
