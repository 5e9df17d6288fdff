"""Training-time wrapper that exposes every student's temporal attention.

Attention students already have softmax-over-time weights; the others get an auxiliary
head over their context sequence. The head never feeds the classifier and lives outside
the student, so ``DistillationModel.student`` is exactly what gets deployed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .base import StudentModel

# Width of the head's projection: what its tanh scores each step in. At 64 it adds
# 1.3-2.6 % to a student's multiply-adds in training; a 16-wide head distilled as well on
# two speaker folds (docs/results.md section 10.1).
DEFAULT_ATTENTION_DIM = 64


@dataclass
class StudentOutput:
    logits: Tensor  # [batch, num_classes]
    attention: Tensor  # [batch, T'], float32, rows sum to 1


class AuxiliaryAttention(nn.Module):
    """a_t = softmax_t(tanh(W c_t + b) . q) with a learnable query q.

    The tanh is what makes W worth having: without it W and q collapse into one vector
    (and the bias cancels in the softmax), a far weaker scorer than the additive attention
    with a learned context vector (Yang et al. 2016) that this follows.
    """

    def __init__(self, context_dim: int, attention_dim: int = DEFAULT_ATTENTION_DIM):
        super().__init__()
        self.project = nn.Linear(context_dim, attention_dim)
        self.query = nn.Parameter(torch.randn(attention_dim) / attention_dim**0.5)

    def forward(self, context: Tensor) -> Tensor:
        scores = torch.tanh(self.project(context)) @ self.query
        return torch.softmax(scores.float(), dim=-1)


class DistillationModel(nn.Module):
    """Student + (for non-attention students) ``AuxiliaryAttention`` of ``attention_dim``;
    returns logits and the student's temporal attention [batch, T'].

    The sequence is read with a forward hook on ``student.temporal_module``
    (torchdistill style). The hook lives only for the duration of each forward call,
    so the bare student never carries it: ``torch.jit.script`` would try to compile
    a hook left behind, and export must see the plain inference graph.
    """

    def __init__(self, student: StudentModel, attention_dim: int = DEFAULT_ATTENTION_DIM):
        super().__init__()
        self.model = student
        self.auxiliary = (
            None
            if student.has_attention
            else AuxiliaryAttention(student.context_dim, attention_dim)
        )

    @property
    def student(self) -> StudentModel:
        """The bare inference model: no auxiliary head in its state_dict or forward."""
        return self.model

    def forward(self, features: Tensor) -> StudentOutput:
        captured: list[Tensor] = []
        module = self.model.get_submodule(self.model.temporal_module)
        handle = module.register_forward_hook(lambda _m, _i, output: captured.append(output))
        try:
            logits = self.model(features)
        finally:
            handle.remove()
        (sequence,) = captured
        if self.auxiliary is None:
            attention = sequence.float().mean(dim=1)  # [batch, heads, T'] -> mean over heads
            # renormalised: under autocast the student's own softmax may have run in bf16
            attention = attention / attention.sum(dim=-1, keepdim=True)
        else:
            attention = self.auxiliary(sequence)
        return StudentOutput(logits=logits, attention=attention)
