"""The on-device students, the training wrapper that exposes their temporal attention,
and their size and compute counts."""

from __future__ import annotations

import inspect

from .att_rnn import AttRNN, MHAttRNN
from .base import StudentModel
from .complexity import count_macs, count_parameters
from .crnn import CRNN
from .distill import DEFAULT_ATTENTION_DIM, AuxiliaryAttention, DistillationModel, StudentOutput
from .lstm import LSTMP
from .tc_resnet import TCResNet8, TCResNet14

STUDENTS: dict[str, type[StudentModel]] = {
    "lstm-p": LSTMP,
    "tc-resnet8": TCResNet8,
    "tc-resnet14": TCResNet14,
    "crnn": CRNN,
    "att-rnn": AttRNN,
    "mhatt-rnn": MHAttRNN,
}


def build_student(
    name: str, num_classes: int, feature_dim: int = 40, **options: object
) -> StudentModel:
    """A student by registry name; ``options`` are its constructor's keyword arguments
    (e.g. ``width_multiplier`` for the TC-ResNets), defaulting to the original's."""
    if name not in STUDENTS:
        raise ValueError(f"unknown student {name!r}; choose one of {sorted(STUDENTS)}")
    return STUDENTS[name](num_classes, feature_dim, **options)


def unknown_options(name: str, options: dict[str, object]) -> list[str]:
    """The ``options`` student ``name``'s constructor does not take."""
    taken = inspect.signature(STUDENTS[name]).parameters
    return [option for option in options if option not in taken]


__all__ = [
    "DEFAULT_ATTENTION_DIM",
    "STUDENTS",
    "AttRNN",
    "AuxiliaryAttention",
    "CRNN",
    "DistillationModel",
    "LSTMP",
    "MHAttRNN",
    "StudentModel",
    "StudentOutput",
    "unknown_options",
    "TCResNet8",
    "TCResNet14",
    "build_student",
    "count_macs",
    "count_parameters",
]
