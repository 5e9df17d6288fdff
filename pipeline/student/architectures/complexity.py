"""Model size and compute, counted the same way for every student so the on-device
comparison is fair."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .layers import MiddleQueryAttention


def count_parameters(model: nn.Module) -> int:
    """Number of learnable values (batch-norm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters())


def _linear(module: nn.Linear, inputs: tuple[Tensor, ...], output: Tensor) -> int:
    return module.in_features * output.numel()


def _conv(module: nn.Conv1d | nn.Conv2d, inputs: tuple[Tensor, ...], output: Tensor) -> int:
    return output.numel() * module.in_channels // module.groups * math.prod(module.kernel_size)


def _recurrent(module: nn.LSTM | nn.GRU, inputs: tuple[Tensor, ...], output: object) -> int:
    gates = 4 if isinstance(module, nn.LSTM) else 3
    directions = 2 if module.bidirectional else 1
    steps = inputs[0].shape[1 if module.batch_first else 0]
    per_step = 0
    for layer in range(module.num_layers):
        layer_input = module.input_size if layer == 0 else module.hidden_size * directions
        per_step += gates * module.hidden_size * (layer_input + module.hidden_size)
    return steps * directions * per_step


def _attention(module: MiddleQueryAttention, inputs: tuple[Tensor, ...], output: Tensor) -> int:
    _, frames, dim = inputs[0].shape
    return 2 * module.heads * frames * dim  # scores, then the weighted sum


_COUNTERS: dict[type, Callable[..., int]] = {
    nn.Linear: _linear,
    nn.Conv1d: _conv,
    nn.Conv2d: _conv,
    nn.LSTM: _recurrent,
    nn.GRU: _recurrent,
    MiddleQueryAttention: _attention,
}


def count_macs(model: nn.Module, num_frames: int, feature_dim: int = 40) -> int:
    """Multiply-accumulates for one clip of ``num_frames`` frames.

    Counts matrix products only (dense, conv, recurrent gates at every step, attention
    scores and pooling); element-wise work (activations, gates' products, peepholes,
    batch norm, which folds into the convs) is left out. The peephole LSTM is counted
    through its dense layers, whose recurrent one runs once per step.
    """
    total = 0

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: object) -> None:
        nonlocal total
        total += _COUNTERS[type(module)](module, inputs, output)

    handles = [m.register_forward_hook(hook) for m in model.modules() if type(m) in _COUNTERS]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, num_frames, feature_dim))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total
