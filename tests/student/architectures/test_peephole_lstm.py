"""The fused peephole recurrence against the cell LSTM-P trained with before it."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from pipeline.student.architectures.layers import PeepholeLSTM


def reference_forward(lstm: PeepholeLSTM, x: Tensor) -> Tensor:
    """PeepholeLSTM.forward as it was before the fused recurrence (commit 16f97c9)."""
    batch = x.size(0)
    gates_x = lstm.input_gates(x)
    h = x.new_zeros(batch, lstm.proj_size)
    c = x.new_zeros(batch, lstm.hidden_size)
    outputs: list[Tensor] = []
    for t in range(x.size(1)):
        gates = gates_x[:, t] + lstm.recurrent_gates(h)
        i, f, g, o = gates.chunk(4, 1)
        i = torch.sigmoid(i + lstm.peephole_input * c)
        f = torch.sigmoid(f + lstm.peephole_forget * c)
        c = f * c + i * torch.tanh(g)
        o = torch.sigmoid(o + lstm.peephole_output * c)
        h = lstm.projection(o * torch.tanh(c))
        outputs.append(h)
    return torch.stack(outputs, dim=1)


def trained_like_lstm(seed: int, sizes: tuple[int, int, int] = (6, 12, 5)) -> PeepholeLSTM:
    """An LSTM with non-zero peepholes (they start at 0, which would hide their terms)."""
    torch.manual_seed(seed)
    lstm = PeepholeLSTM(*sizes)
    with torch.no_grad():
        for peephole in (lstm.peephole_input, lstm.peephole_forget, lstm.peephole_output):
            peephole.uniform_(-0.5, 0.5)
    return lstm


def outputs_and_gradients(lstm: PeepholeLSTM, forward, x: Tensor, weights: Tensor):
    lstm.zero_grad()
    x = x.clone().requires_grad_(True)
    out = forward(x)
    (out * weights).sum().backward()  # a loss that reaches every frame's output
    grads = {name: p.grad.clone() for name, p in lstm.named_parameters()}
    return out.detach(), x.grad, grads


# small, and LSTM-P's own sizes on a 2 s clip (40 mels, 500 units, projection 200, 101 frames)
CASES = [(0, (6, 12, 5), 17), (1, (6, 12, 5), 17), (2, (40, 500, 200), 101)]


@pytest.mark.parametrize(("seed", "sizes", "frames"), CASES)
def test_fused_recurrence_matches_the_old_cell(
    seed: int, sizes: tuple[int, int, int], frames: int
) -> None:
    lstm = trained_like_lstm(seed, sizes)
    x = torch.randn(3, frames, sizes[0])
    weights = torch.randn(3, frames, sizes[2])
    new = outputs_and_gradients(lstm, lstm, x, weights)
    old = outputs_and_gradients(lstm, lambda v: reference_forward(lstm, v), x, weights)
    torch.testing.assert_close(new[0], old[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(new[1], old[1], rtol=0, atol=1e-5)
    assert new[2].keys() == old[2].keys()
    for name in old[2]:
        assert old[2][name].abs().max() > 0, f"{name} gets no gradient: the test is blind to it"
        torch.testing.assert_close(new[2][name], old[2][name], rtol=0, atol=1e-5, msg=name)


def test_training_uses_the_fused_recurrence_and_inference_the_loop() -> None:
    lstm = trained_like_lstm(0)
    x = torch.randn(2, 9, 6)
    assert lstm(x).grad_fn.name() == "PeepholeRecurrenceBackward"
    with torch.no_grad():
        inferred = lstm(x)
        torch.testing.assert_close(inferred, reference_forward(lstm, x), rtol=0, atol=1e-6)


def test_gradcheck_in_double_precision() -> None:
    lstm = trained_like_lstm(2).double()
    x = torch.randn(2, 5, 6, dtype=torch.double, requires_grad=True)
    params = [p for p in lstm.parameters()]
    assert torch.autograd.gradcheck(lambda v, *_: lstm(v), (x, *params))
