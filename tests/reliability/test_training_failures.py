"""Stage two under misuse and failure: a cache that does not fit the run is refused with
the reason, a run killed mid-epoch (even mid-save) resumes to the uninterrupted result,
and non-finite numbers stop a run before any checkpoint holds them."""

from __future__ import annotations

import json
import shutil
import signal
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import CacheError, TkdError
from stages.train_student import StudentTrainingOptions, train_student
from tests.builders import copy_dataset, manifest_lines, rewrite_cache
from tests.reliability.helpers import finish, python

QUICK = StudentTrainingOptions(
    student="tc-resnet8", kd="attention", epochs=3, batch_size=8, lr=3e-3, device="cpu"
)
BATCHES_PER_EPOCH = 5  # 40 training clips of the synth_data fixture, 8 a batch


@pytest.fixture(scope="module")
def coarse_cache(tmp_path_factory, teacher_cache) -> Path:
    """teacher_cache at 20 bins instead of 40 (same clips, another extraction setting)."""

    def halved(source, ids):
        pairs = [[source.record(i).rollout, source.record(i).attention] for i in ids]
        return tuple(
            np.stack([p[k] for p in pairs]).reshape(len(ids), -1, 20, 2).sum(-1) for k in (0, 1)
        )

    out = tmp_path_factory.mktemp("coarse") / "c0a25e20c0a25e20"
    return rewrite_cache(teacher_cache, out, halved, {"resolution": 20})


def test_cache_of_another_class_list_is_refused(synth_data, teacher_cache, tmp_path):
    classes = json.loads((synth_data / "labels.json").read_text())["classes"]
    renamed = [*classes[:-1], "something-else"]
    lines = manifest_lines(synth_data)
    for line in lines:
        line["labels"] = ["something-else" if x == classes[-1] else x for x in line["labels"]]
    data = copy_dataset(synth_data, tmp_path / "data", lines, renamed)
    with pytest.raises(CacheError, match=f"classes differ: class 3 is '{classes[-1]}' in the"):
        train_student(data, tmp_path / "run", teacher_cache, QUICK)
    assert not (tmp_path / "run").exists()


def test_cache_of_another_dataset_is_refused(synth_data, teacher_cache, tmp_path):
    # Other clips: ids the cache does not hold.
    lines = manifest_lines(synth_data)
    lines[0]["id"] = "some-other-clip"
    other = copy_dataset(synth_data, tmp_path / "other", lines)
    with pytest.raises(CacheError, match=r"1 of the dataset's 72 clips are not in the cache"):
        train_student(other, tmp_path / "run", teacher_cache, QUICK)
    # Same ids and classes over other audio: the case ids alone cannot catch.
    lines = manifest_lines(synth_data)
    swapped = tmp_path / "swapped.wav"
    shutil.copyfile(lines[1]["audio"], swapped)
    lines[0]["audio"] = str(swapped)
    lookalike = copy_dataset(synth_data, tmp_path / "lookalike", lines)
    with pytest.raises(CacheError, match="extracted from another dataset .* extract the teacher"):
        train_student(lookalike, tmp_path / "run", teacher_cache, QUICK)
    assert not (tmp_path / "run").exists()


def test_a_run_resumed_with_a_cache_of_another_resolution_is_refused(
    synth_data, teacher_cache, coarse_cache, tmp_path, monkeypatch
):
    # A run interrupted after epoch 1, then resumed against other targets: refused, since
    # its remaining epochs would silently distil something else than its first. (Any
    # resolution can start a run: stage two resamples it to the student's steps.)
    import pipeline.student.evaluation

    calls, evaluate = [0], pipeline.student.evaluation.evaluate_student

    def interrupt_at_epoch_two(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 2:
            raise KeyboardInterrupt
        return evaluate(*args, **kwargs)

    two_epochs, run = replace(QUICK, epochs=2), tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr("stages.train_student.evaluate_student", interrupt_at_epoch_two)
        with pytest.raises(KeyboardInterrupt):
            train_student(synth_data, run, teacher_cache, two_epochs)
    refusals = [
        (coarse_cache, two_epochs, "teacher cache"),
        (None, replace(two_epochs, kd="none"), "--kd, teacher cache"),
        (teacher_cache, replace(two_epochs, kd_weight=1.0), "--kd-weight"),
    ]
    for cache, options, named in refusals:
        with pytest.raises(TkdError, match=f"run: holds a run made with another {named};"):
            train_student(synth_data, run, cache, options)
    resumed = train_student(synth_data, run, teacher_cache, replace(two_epochs, workers=0))
    assert resumed["epochs_run"] == 2  # the same settings (how it runs aside) resume it
    with pytest.raises(TkdError, match="another teacher cache"):  # finished: still refused
        train_student(synth_data, run, coarse_cache, two_epochs)


CHILD = """
import io, os, signal, torch
from pathlib import Path
from pipeline.student.losses import DistillationLoss
from stages.train_student import StudentTrainingOptions, train_student
torch.set_num_threads(1)  # as the tests' own process (_one_thread)

def die():
    os.kill(os.getpid(), signal.SIGKILL)

{setup}
options = StudentTrainingOptions(
    student="tc-resnet8", kd="attention", epochs=3, batch_size=8, lr=3e-3, device="cpu"
)
train_student({data!r}, {out!r}, {cache!r}, options)
"""

KILL_IN_BATCH = """
step, real_step = [0], DistillationLoss.__call__
def counted(self, *args, **kwargs):
    step[0] += 1
    if step[0] == {batch}:
        die()
    return real_step(self, *args, **kwargs)
DistillationLoss.__call__ = counted
"""

KILL_WHILE_SAVING = """
real_save = torch.save
def save(payload, target, *args, **kwargs):
    if "last.pt" in Path(target).name:  # half the bytes reach the disk, then the kill
        buffer = io.BytesIO()
        real_save(payload, buffer)
        Path(target).write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        die()
    return real_save(payload, target, *args, **kwargs)
torch.save = save
"""


def _epoch_of_last(run: Path) -> int:
    return torch.load(run / "last.pt", weights_only=False)["epoch"]


def test_kill_9_mid_epoch_and_mid_save_then_resume_equals_an_uninterrupted_run(
    synth_data, teacher_cache, tmp_path
):
    straight = train_student(synth_data, tmp_path / "straight", teacher_cache, QUICK)
    run = tmp_path / "run"

    def child(setup: str) -> None:
        script = CHILD.format(
            setup=setup, data=str(synth_data), out=str(run), cache=str(teacher_cache)
        )
        code, _, stderr = finish(python(script))
        assert code == -signal.SIGKILL, stderr[-2000:]
        assert not (run / "metrics.json").exists()

    child(KILL_IN_BATCH.format(batch=BATCHES_PER_EPOCH + 3))  # epoch 2, third batch
    assert _epoch_of_last(run) == 0  # epoch 1 is kept
    child(KILL_WHILE_SAVING)  # resumes at epoch 2, killed while saving its resume point
    assert _epoch_of_last(run) == 0  # the half-written save never replaced the last good one
    resumed = train_student(synth_data, run, teacher_cache, QUICK)
    assert resumed["history"] == straight["history"]
    assert resumed["test"] == straight["test"]


def test_non_finite_weights_stop_the_run_before_a_checkpoint(
    synth_data, teacher_cache, tmp_path, monkeypatch
):
    """A finite loss whose step leaves NaN weights (the last batch of the epoch) must not
    reach validation and a best checkpoint."""
    real_step, steps = torch.optim.AdamW.step, [0]

    def poisoned(self, *args, **kwargs):
        result = real_step(self, *args, **kwargs)
        steps[0] += 1
        if steps[0] == BATCHES_PER_EPOCH:
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("nan"))
        return result

    monkeypatch.setattr(torch.optim.AdamW, "step", poisoned)
    with pytest.raises(TkdError, match="weights became non-finite in epoch 1; stopped before"):
        train_student(synth_data, tmp_path, teacher_cache, QUICK)
    assert not (tmp_path / "best.pt").exists() and not (tmp_path / "last.pt").exists()


def test_nan_loss_later_keeps_only_finite_checkpoints(
    synth_data, teacher_cache, tmp_path, monkeypatch
):
    from pipeline.student.losses import DistillationLoss

    real_call, calls = DistillationLoss.__call__, [0]

    def nan_in_epoch_two(self, *args, **kwargs):
        terms = real_call(self, *args, **kwargs)
        calls[0] += 1
        if calls[0] == BATCHES_PER_EPOCH + 2:
            terms.total = terms.total * float("nan")
        return terms

    monkeypatch.setattr(DistillationLoss, "__call__", nan_in_epoch_two)
    with pytest.raises(TkdError, match="loss became nan at epoch 2"):
        train_student(synth_data, tmp_path, teacher_cache, QUICK)
    assert _epoch_of_last(tmp_path) == 0 and not (tmp_path / "metrics.json").exists()
    best = torch.load(tmp_path / "best.pt", weights_only=True)["state_dict"]
    assert all(torch.isfinite(tensor).all() for tensor in best.values())
