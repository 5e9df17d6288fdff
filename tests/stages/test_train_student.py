import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from pipeline.errors import CacheError, TkdError
from pipeline.student.architectures import STUDENTS
from pipeline.student.checkpoint import load_student
from stages.train_student import StudentTrainingOptions, train_student
from tests.builders import copy_dataset

ROOT = Path(__file__).resolve().parents[2]
QUICK = StudentTrainingOptions(epochs=4, batch_size=8, lr=3e-3, device="cpu")


@pytest.mark.parametrize("kd", ["none", "attention", "logits", "both"])
@pytest.mark.parametrize("student", sorted(STUDENTS))
def test_every_student_trains_with_every_kd_mode(student, kd, synth_data, teacher_cache, tmp_path):
    options = replace(QUICK, student=student, kd=kd, kd_weight=0.5)
    results = train_student(synth_data, tmp_path, teacher_cache, options)
    losses = [epoch["train_loss"] for epoch in results["history"]]
    assert losses[-1] < losses[0], losses
    if kd in ("attention", "both"):
        assert results["history"][0]["train_attention"] > 0
    assert {"valid", "test", "parameters", "macs", "steps_per_second"} <= set(results)
    assert (tmp_path / "best.pt").is_file() and (tmp_path / "curves.png").is_file()
    model, checkpoint = load_student(tmp_path)
    assert not any("auxiliary" in name for name in model.state_dict())
    assert checkpoint.student == student


@pytest.mark.parametrize("kd", ["none", "attention", "logits", "both"])
def test_only_attention_kd_runs_the_attention_head_while_training(
    kd, synth_data, teacher_cache, tmp_path, monkeypatch
):
    from pipeline.student.architectures.distill import AuxiliaryAttention

    modes, forward = [], AuxiliaryAttention.forward

    def recorded(self, context):
        modes.append(self.training)
        return forward(self, context)

    monkeypatch.setattr(AuxiliaryAttention, "forward", recorded)
    options = replace(QUICK, student="tc-resnet8", kd=kd, epochs=1)
    train_student(synth_data, tmp_path, teacher_cache, options)
    assert any(modes) == (kd in ("attention", "both"))  # training steps
    assert not all(modes)  # evaluation still reads the head: the student's in-event mass


def test_the_attention_head_takes_the_asked_width_and_is_restored_with_it(
    synth_data, teacher_cache, tmp_path
):
    from pipeline.student.checkpoint import load_distillation_model

    options = replace(QUICK, student="tc-resnet8", kd="attention", epochs=1, attention_dim=8)
    train_student(synth_data, tmp_path, teacher_cache, options)
    assert json.loads((tmp_path / "config.json").read_text())["attention_dim"] == 8
    model, _ = load_distillation_model(tmp_path)
    assert model.auxiliary.query.numel() == 8 and model.auxiliary.project.out_features == 8
    with pytest.raises(TkdError, match="--attention-dim must be at least 1"):
        replace(options, attention_dim=0)


def test_same_seed_same_run_whether_targets_are_held_or_streamed(
    synth_data, teacher_cache, tmp_path
):
    options = replace(QUICK, student="tc-resnet8", kd="both", epochs=2)
    first = train_student(synth_data, tmp_path / "a", teacher_cache, options)
    streamed = replace(options, target_memory_mb=0)
    second = train_student(synth_data, tmp_path / "b", teacher_cache, streamed)
    assert first["history"] == second["history"] and first["test"] == second["test"]
    held = [json.loads((tmp_path / run / "config.json").read_text()) for run in "ab"]
    assert [config["teacher_targets"] for config in held] == ["memory", "streamed"]


def test_interrupted_run_resumes_to_the_same_result(
    synth_data, teacher_cache, tmp_path, monkeypatch
):
    options = replace(QUICK, student="tc-resnet8", kd="attention", epochs=4)
    straight = train_student(synth_data, tmp_path / "straight", teacher_cache, options)

    import pipeline.student.evaluation as evaluation

    calls = {"n": 0}
    original = evaluation.evaluate_student

    def interrupt_at_third_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr("stages.train_student.evaluate_student", interrupt_at_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_student(synth_data, tmp_path / "resumed", teacher_cache, options)
    assert not (tmp_path / "resumed" / "metrics.json").exists()
    monkeypatch.setattr("stages.train_student.evaluate_student", original)
    resumed = train_student(synth_data, tmp_path / "resumed", teacher_cache, options)
    assert resumed["history"] == straight["history"]
    assert resumed["test"] == straight["test"]


def test_attention_kd_moves_student_attention_onto_the_event(synth_data, oracle_cache, tmp_path):
    masses = {}
    for kd in ("none", "attention"):
        options = replace(QUICK, student="att-rnn", kd=kd, kd_weight=1.0, epochs=8, seed=1)
        masses[kd] = train_student(synth_data, tmp_path / kd, oracle_cache, options)[
            "test_in_event_mass"
        ]
    assert masses["attention"] > masses["none"] + 0.1, masses


def test_kd_needs_a_cache_that_matches_the_dataset(synth_data, teacher_cache, tmp_path):
    with pytest.raises(TkdError, match="needs --cache"):
        train_student(synth_data, tmp_path / "a", None, replace(QUICK, kd="attention"))
    classes = json.loads((synth_data / "labels.json").read_text())["classes"]
    other = copy_dataset(synth_data, tmp_path / "other", classes=classes[::-1])
    with pytest.raises(CacheError, match="class"):
        train_student(other, tmp_path / "b", teacher_cache, replace(QUICK, kd="attention"))


@pytest.mark.parametrize("views", [1, 3])
def test_stage_two_never_imports_the_teacher(views, request, tmp_path):
    """Training with KD (replaying cached views too) works while `import transformers`
    (and the teacher module) fail."""
    data, cache = (
        request.getfixturevalue(name)
        for name in (
            ("synth_data", "teacher_cache") if views == 1 else ("views_data", "views_cache")
        )
    )
    script = f"""
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "transformers" or name.startswith("pipeline.teacher"):
            raise ImportError("stage two must not import " + name)
sys.meta_path.insert(0, Refuse())
from dataclasses import replace
from tests.builders import copy_dataset
from stages.train_student import StudentTrainingOptions, train_student
options = StudentTrainingOptions(
    student="tc-resnet8", kd="both", epochs=2, batch_size=8, device="cpu", views={views}
)
result = train_student({str(data)!r}, {str(tmp_path)!r}, {str(cache)!r}, options)
assert "transformers" not in sys.modules
print("trained", result["test"], "views", result["views"])
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "trained" in done.stdout and f"views {views}" in done.stdout
    assert json.loads((tmp_path / "config.json").read_text())["views"] == views


def test_nan_loss_stops_without_a_checkpoint(synth_data, teacher_cache, tmp_path, monkeypatch):
    from pipeline.student.losses import LossTerms

    monkeypatch.setattr(
        "stages.train_student.DistillationLoss.__call__",
        lambda self, logits, *a: LossTerms(
            total=logits.sum() * torch.tensor(float("nan")), task=logits.sum()
        ),
    )
    with pytest.raises(TkdError, match="loss became nan"):
        train_student(synth_data, tmp_path, teacher_cache, QUICK)
    assert not (tmp_path / "best.pt").exists()


def test_a_run_made_before_a_setting_existed_is_resumed_under_its_default(tmp_path):
    from stages.train_student import _refuse_other_run

    settings = {"data_fingerprint": "abc", "epochs": 3, "views": 1}
    (tmp_path / "config.json").write_text(json.dumps({"data_fingerprint": "abc", "epochs": 3}))
    _refuse_other_run(tmp_path, settings)  # "views" did not exist yet: it was 1
    with pytest.raises(TkdError, match="--views"):
        _refuse_other_run(tmp_path, {**settings, "views": 2})
