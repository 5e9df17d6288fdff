import json

import pytest

from pipeline.errors import TkdError
from stages.finetune_teacher import TeacherTrainingOptions
from stages.folds import Fold, folds_from, run_folds
from stages.run import Sweep
from stages.train_student import StudentTrainingOptions
from tests.builders import copy_dataset

TEMPLATE = StudentTrainingOptions(epochs=1, batch_size=16, device="cpu")


@pytest.fixture(scope="module")
def two_folds(synth_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("folds")
    return [copy_dataset(synth_data, root / name) for name in ("fold0", "fold1")]


def test_folds_pool_runs_and_pair_each_kd_run_with_its_baseline(two_folds, tiny_teacher, tmp_path):
    folds = folds_from(two_folds, [tiny_teacher, tiny_teacher])
    results = run_folds(
        folds,
        tmp_path / "runs",
        Sweep(["tc-resnet8"], ["none", "attention"], [0.5], 2, TEMPLATE),
        cache_root=tmp_path / "cache",
    )
    assert [fold["fold"] for fold in results["folds"]] == ["fold0", "fold1"]
    assert len(results["runs"]) == 2 * 2 * 2  # folds x kd modes x seeds
    none, attention = results["table"]
    assert (none["kd"], none["test"]["n"], none["paired_gain"]) == ("none", 4, None)
    assert none["test_in_event_mass"]["n"] == 4 and 0 <= none["test_in_event_mass"]["mean"] <= 1
    assert attention["kd"] == "attention" and attention["source"] == "rollout"
    by_key = {(r["fold"], r["seed"], r["kd"]): r["metric"] for r in results["runs"]}
    differences = [
        by_key[(fold, seed, "attention")] - by_key[(fold, seed, "none")]
        for fold in ("fold0", "fold1")
        for seed in (0, 1)
    ]
    gain = attention["paired_gain"]
    assert gain["n"] == 4 and gain["mean"] == pytest.approx(sum(differences) / 4)
    low, high = gain["interval"]
    assert low <= gain["mean"] <= high
    assert json.loads((tmp_path / "runs" / "results.json").read_text()) == json.loads(
        json.dumps(results)
    )
    text = (tmp_path / "runs" / "results.md").read_text()
    assert "(n = 4)" in text and "± 0.00" not in text
    assert (tmp_path / "runs" / "fold1" / "results.md").is_file()  # each fold's own sweep


def test_folds_fine_tune_one_teacher_each_and_reuse_it(two_folds, tiny_teacher, tmp_path):
    options = TeacherTrainingOptions(epochs=1, batch_size=8, device="cpu")
    folds = folds_from(two_folds[:1], None)

    def protocol():
        return run_folds(
            folds,
            tmp_path / "runs",
            Sweep(["tc-resnet8"], ["none"], [0.5], template=TEMPLATE),
            str(tiny_teacher),
            options,
            cache_root=tmp_path / "cache",
        )

    first = protocol()
    teacher = tmp_path / "runs" / "fold0" / "teacher"
    assert first["folds"][0]["teacher"] == str(teacher)
    assert first["folds"][0]["teacher_test"] is not None
    stamp = (teacher / "metrics.json").stat().st_mtime_ns
    assert protocol()["runs"] == first["runs"]
    assert (teacher / "metrics.json").stat().st_mtime_ns == stamp  # not fine-tuned again


def test_folds_are_refused_before_any_work(two_folds, tmp_path):
    with pytest.raises(TkdError, match="teacher"):
        run_folds(
            [Fold("fold0", two_folds[0])], tmp_path / "runs", Sweep(["tc-resnet8"], ["none"], [])
        )
    with pytest.raises(TkdError, match="one --teacher per --data"):
        folds_from(two_folds, [two_folds[0]])
    with pytest.raises(TkdError, match="bogus"):
        run_folds(folds_from(two_folds, None), tmp_path / "runs", Sweep(["bogus"], ["none"], []))
    assert not (tmp_path / "runs").exists()
