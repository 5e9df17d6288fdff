"""The shared training loop, on a model small enough to run each test in a second."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pipeline.errors import CheckpointError, TkdError
from pipeline.fit import LAST, Fit

BATCHES = 3  # 24 rows, 8 a batch


def fit(
    out: Path,
    evaluate: Callable[[], tuple[str, float]] | None = None,
    loss: Callable | None = None,
    **options,
) -> tuple[Fit, DataLoader, list[int]]:
    """A regression with dropout and shuffling, so that resuming must restore every RNG.

    Returns the fit, its batches, and the epochs at which ``save_best`` was called.
    """
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    features = torch.randn(24, 3)
    data = TensorDataset(features, features.sum(1, keepdim=True))
    batches = DataLoader(data, batch_size=8, shuffle=True, generator=torch.Generator())
    model = nn.Sequential(nn.Linear(3, 16), nn.Dropout(0.3), nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)

    def mse(batch):
        return nn.functional.mse_loss(model(batch[0]), batch[1])

    @torch.no_grad()
    def negative_mse():
        model.eval()
        return "negative_mse", -float(nn.functional.mse_loss(model(features), data.tensors[1]))

    saved: list[int] = []
    loop = Fit(
        model,
        optimizer,
        schedule,
        loss or mse,
        evaluate or negative_mse,
        lambda: saved.append(len(loop.history.epochs) - 1),
        out,
        on_epoch=lambda epoch: batches.generator.manual_seed(1000 + epoch),
        **{"epochs": 4, **options},
    )
    return loop, batches, saved


def scripted(values: list[float]) -> Callable[[], tuple[str, float]]:
    remaining = iter(values)
    return lambda: ("accuracy", next(remaining))


def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path):
    loop, batches, _ = fit(tmp_path / "straight", resume=True)
    straight = loop.run(batches)
    straight_weights = loop.model.state_dict()

    loop, batches, _ = fit(tmp_path / "resumed", resume=True)
    real_loss, calls = loop.loss, [0]

    def killed_in_epoch_three(batch):
        calls[0] += 1
        if calls[0] == 2 * BATCHES + 2:
            raise KeyboardInterrupt
        return real_loss(batch)

    loop.loss = killed_in_epoch_three
    with pytest.raises(KeyboardInterrupt):
        loop.run(batches)
    assert torch.load(tmp_path / "resumed" / LAST, weights_only=True)["epoch"] == 1
    torch.manual_seed(123)  # the RNG the run resumes with must come from its resume point
    loop, batches, _ = fit(tmp_path / "resumed", resume=True)
    real_loss, calls = loop.loss, [0]

    def counted(batch):
        calls[0] += 1
        return real_loss(batch)

    loop.loss = counted
    resumed = loop.run(batches)
    assert calls[0] == 2 * BATCHES  # only epochs three and four ran again
    assert resumed.history.epochs == straight.history.epochs
    assert resumed.selection == straight.selection and resumed.steps == 4 * BATCHES
    for name, tensor in loop.model.state_dict().items():
        assert torch.equal(tensor, straight_weights[name]), name


def test_cpu_time_counts_the_steps_work_and_a_resume_adds_to_it(tmp_path, monkeypatch):
    clock = iter(range(0, 1000, 2))  # each reading 2 CPU seconds after the last
    monkeypatch.setattr("pipeline.fit.time.process_time", lambda: next(clock))
    loop, batches, _ = fit(tmp_path, resume=True, epochs=2)
    first = loop.run(batches)
    assert first.cpu_seconds == 2 * 2  # one tick and tock per epoch
    loop, batches, _ = fit(tmp_path, resume=True, epochs=3)
    assert loop.run(batches).cpu_seconds == 3 * 2  # the resumed run kept its first 4 s


def test_best_epoch_is_kept_and_patience_stops_the_run(tmp_path):
    loop, batches, saved = fit(
        tmp_path, evaluate=scripted([0.5, 0.7, 0.6, 0.65, 0.7, 0.9]), epochs=10, patience=3
    )
    result = loop.run(batches)
    assert saved == [0, 1]  # saved when, and only when, the metric improved (a tie is not)
    assert (result.selection.best_epoch, result.selection.best) == (1, 0.7)
    assert len(result.history.epochs) == 5  # three epochs without progress, then stop
    assert result.history.epochs[-1]["valid_accuracy"] == 0.7
    assert result.metric == "accuracy"
    assert not (tmp_path / LAST).exists()  # no resume point unless asked for


def test_a_step_budget_ends_the_last_epoch_early(tmp_path):
    loop, batches, _ = fit(tmp_path, steps=BATCHES + 1, epochs=2)
    result = loop.run(batches)
    assert [r["step"] for r in result.history.epochs] == [BATCHES, BATCHES + 1]
    assert result.steps == BATCHES + 1


def test_a_nan_loss_stops_before_the_epoch_is_saved(tmp_path):
    calls = [0]

    def nan_in_epoch_two(batch):
        calls[0] += 1
        loss = nn.functional.mse_loss(loop.model(batch[0]), batch[1])
        return loss * float("nan") if calls[0] == BATCHES + 2 else loss

    loop, batches, saved = fit(tmp_path, loss=nan_in_epoch_two, resume=True)
    with pytest.raises(TkdError, match=r"loss became nan at epoch 2; stopped before writing"):
        loop.run(batches)
    assert torch.load(tmp_path / LAST, weights_only=True)["epoch"] == 0 and saved == [0]


def test_non_finite_weights_stop_before_validation(tmp_path, monkeypatch):
    """A finite loss whose step leaves NaN weights (the epoch's last batch)."""
    real_step, steps = torch.optim.SGD.step, [0]

    def poisoned(self, *args, **kwargs):
        result = real_step(self, *args, **kwargs)
        steps[0] += 1
        if steps[0] == BATCHES:
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("nan"))
        return result

    monkeypatch.setattr(torch.optim.SGD, "step", poisoned)
    loop, batches, saved = fit(tmp_path, resume=True)
    with pytest.raises(TkdError, match="weights became non-finite in epoch 1; stopped before"):
        loop.run(batches)
    assert saved == [] and not (tmp_path / LAST).exists()


def test_a_damaged_resume_point_is_refused_with_its_path(tmp_path):
    (tmp_path / LAST).write_bytes(b"not a checkpoint")
    loop, batches, _ = fit(tmp_path, resume=True)
    with pytest.raises(CheckpointError, match="last.pt.*delete it to restart"):
        loop.run(batches)
