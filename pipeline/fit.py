"""One training loop for both stages.

Fine-tuning the teacher and training a student differ in their model, data and loss;
everything around the step is the same and lives here: epochs (or a step budget),
best-on-valid selection, early stopping, the non-finite checks that stop a run before a
checkpoint holds NaN, the per-epoch history and, when asked, a resume point written after
each finished epoch, so a killed run continues to the result an uninterrupted one reaches.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from pipeline.errors import CheckpointError, TkdError
from pipeline.files import write_atomic
from pipeline.progress import progress
from pipeline.training import History, ModelSelection

LAST = "last.pt"


class Terms(Protocol):
    """A loss made of named parts: ``total`` is minimised, every part is logged."""

    total: Tensor

    def as_floats(self) -> dict[str, float]: ...


def autocast(device: torch.device) -> AbstractContextManager:
    """bfloat16 autocast on a GPU, a no-op on the CPU (whose results must stay exact)."""
    return torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda")


@dataclass
class FitResult:
    selection: ModelSelection
    history: History
    metric: str  # name of the validation metric
    steps: int
    seconds: float  # spent in training steps, over every session of a resumed run
    cpu_seconds: float  # the process's CPU time in them: what they cost on a shared machine


@dataclass
class Fit:
    """The loop around a caller's step.

    ``loss(batch)`` returns the loss to minimise (a tensor, or `Terms` whose parts go into
    the history as ``train_<part>``); ``evaluate()`` returns the validation metric as
    ``(name, value)``, higher is better; ``save_best()`` is called when it improves.
    ``on_epoch(epoch)`` reseeds whatever is random in an epoch (shuffling, re-mixing).
    With ``resume`` a run restarted in the same ``out`` continues from its last finished
    epoch; that reproduces an uninterrupted run when ``on_epoch`` seeds all the data draws.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    loss: Callable[[Any], Tensor | Terms]
    evaluate: Callable[[], tuple[str, float]]
    save_best: Callable[[], None]
    out: Path
    epochs: int
    steps: int | None = None  # a step budget, which may end the last epoch early
    patience: int | None = None
    clip_grad: float | None = None
    on_epoch: Callable[[int], None] | None = None
    resume: bool = False
    desc: str = "fit"
    advice: str = "try a lower --lr"
    selection: ModelSelection = field(init=False)
    history: History = field(default_factory=History, init=False)

    def __post_init__(self) -> None:
        self.selection = ModelSelection(self.patience)

    def run(self, batches: DataLoader) -> FitResult:
        start, steps, seconds, cpu_seconds = self._load() if self.resume else (0, 0, 0.0, 0.0)
        budget = self.steps or self.epochs * len(batches)
        metric = ""
        with progress(total=budget - steps, desc=self.desc, unit="step") as bar:
            for epoch in range(start, self.epochs):
                if self.selection.should_stop or steps >= budget:
                    break
                if self.on_epoch is not None:
                    self.on_epoch(epoch)
                self.model.train()
                tick, cpu_tick, parts = time.time(), time.process_time(), []
                for batch in batches:
                    parts.append(self._step(batch, epoch))
                    steps += 1
                    bar.update()
                    bar.set_postfix(epoch=epoch + 1, loss=f"{parts[-1]['total']:.3f}")
                    if steps >= budget:
                        break
                seconds += time.time() - tick
                cpu_seconds += time.process_time() - cpu_tick
                self._check_weights(epoch)
                metric, value = self.evaluate()
                self.history.append(self._record(epoch, steps, parts, metric, value))
                if self.selection.update(epoch, value):
                    self.save_best()
                if self.resume:
                    self._save(epoch, steps, seconds, cpu_seconds)
        return FitResult(self.selection, self.history, metric, steps, seconds, cpu_seconds)

    def _step(self, batch: Any, epoch: int) -> dict[str, float]:
        terms = self.loss(batch)
        total = terms if isinstance(terms, Tensor) else terms.total
        if not torch.isfinite(total):
            raise TkdError(
                f"{self.out}: loss became {total.item()} at epoch {epoch + 1}; stopped before "
                f"writing a checkpoint ({self.advice})"
            )
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.clip_grad is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad)
        self.optimizer.step()
        self.schedule.step()
        return {"total": total.item()} if isinstance(terms, Tensor) else terms.as_floats()

    def _check_weights(self, epoch: int) -> None:
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            raise TkdError(
                f"{self.out}: weights became non-finite in epoch {epoch + 1}; stopped before "
                f"writing a checkpoint ({self.advice})"
            )

    def _record(
        self, epoch: int, steps: int, parts: list[dict[str, float]], metric: str, value: float
    ) -> dict[str, float]:
        """One history line; ``step`` is recorded for runs budgeted in steps."""
        record: dict[str, float] = {"epoch": epoch}
        if self.steps is not None:
            record["step"] = steps
        for name in parts[0]:
            mean = float(np.mean([part[name] for part in parts]))
            record["train_loss" if name == "total" else f"train_{name}"] = mean
        record[f"valid_{metric}"] = value
        return record

    def _save(self, epoch: int, steps: int, seconds: float, cpu_seconds: float) -> None:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "selection": self.selection.state_dict(),
            "history": self.history.epochs,
            "rng": torch.get_rng_state(),
            "epoch": epoch,
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "steps": steps,
        }
        write_atomic(self.out / LAST, lambda temporary: torch.save(state, temporary))

    def _load(self) -> tuple[int, int, float, float]:
        """(first epoch to run, steps, seconds, CPU seconds) from the resume point, if any."""
        path = self.out / LAST
        if not path.is_file():
            return 0, 0, 0.0, 0.0
        try:
            state = torch.load(path, weights_only=True)
        except Exception as error:  # torch raises many types for damaged files
            raise CheckpointError(
                path,
                f"unreadable ({type(error).__name__}); delete it to restart the run from scratch",
            ) from None
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.selection.load_state_dict(state["selection"])
        self.history.epochs = state["history"]
        torch.set_rng_state(state["rng"])
        cpu_seconds = state.get("cpu_seconds", 0.0)  # not kept by runs before it was measured
        return state["epoch"] + 1, state["steps"], state["seconds"], cpu_seconds
