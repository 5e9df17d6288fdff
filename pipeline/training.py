"""Pieces every training loop in tkd shares (teacher fine-tuning, student training):
seeding, devices, targets, model selection, and the files a run leaves behind."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.data.manifest import Clip, Manifest
from pipeline.errors import TkdError


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present; an explicit ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TkdError(f"--device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TkdError(f"--device {name} was asked for but no CUDA GPU is visible")
    return device


def label_target(manifest: Manifest, clip: Clip) -> torch.Tensor:
    """Class index (single-label) or multi-hot float vector (multi-label)."""
    indices = manifest.label_indices(clip)
    if not manifest.labels.multi_label:
        return torch.tensor(indices[0])
    target = torch.zeros(len(manifest.labels))
    target[indices] = 1.0
    return target


@dataclass
class ModelSelection:
    """Keeps the best-on-valid epoch and says when patience has run out."""

    patience: int | None = None
    best: float = -float("inf")
    best_epoch: int = -1
    epochs_since_best: int = 0

    def update(self, epoch: int, metric: float) -> bool:
        """Record an epoch's valid metric; True when it is the new best."""
        if metric > self.best:
            self.best, self.best_epoch, self.epochs_since_best = metric, epoch, 0
            return True
        self.epochs_since_best += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.epochs_since_best >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


@dataclass
class History:
    """Per-epoch records of a run, written as JSON and drawn as learning curves."""

    epochs: list[dict[str, float]] = field(default_factory=list)

    def append(self, record: dict[str, float]) -> None:
        self.epochs.append(record)

    def plot(self, path: Path, metric_name: str) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        epochs = [r["epoch"] for r in self.epochs]
        figure, (loss_axis, metric_axis) = plt.subplots(1, 2, figsize=(9, 3.2))
        loss_axis.plot(epochs, [r["train_loss"] for r in self.epochs], label="train loss")
        loss_axis.set_xlabel("epoch")
        loss_axis.legend()
        metric_axis.plot(
            epochs, [r[f"valid_{metric_name}"] for r in self.epochs], label=f"valid {metric_name}"
        )
        metric_axis.set_xlabel("epoch")
        metric_axis.legend()
        figure.tight_layout()
        figure.savefig(path, dpi=100)
        plt.close(figure)
