import json
import shutil
from dataclasses import replace

import pytest

import stages.run
from pipeline.errors import TkdError
from pipeline.teacher.extraction import ExtractionSettings
from stages.run import Sweep, plan_runs, results_markdown, run_sweep
from stages.train_student import StudentTrainingOptions

TEMPLATE = StudentTrainingOptions(epochs=1, batch_size=16, device="cpu")


def test_plan_varies_lambda_and_teacher_attention_only_where_used():
    specs = plan_runs(
        ["att-rnn"], ["none", "attention", "logits"], [0.1, 0.5], 2, ["rollout", "layer:1"]
    )
    settings = {(s.setting, s.kd_weight) for s in specs}
    assert ("none", 0.0) in settings and ("logits", 0.5) in settings
    assert ("attention (layer:1)", 0.1) in settings and ("attention", 0.5) in settings
    assert len(specs) == 2 * (1 + 2 * 2 + 2)
    assert len({s.folder for s in specs}) == len(specs)


@pytest.mark.parametrize(
    "students, kd_modes, kd_weights, sources, problem",
    [
        (["att-rnn"], ["attention"], [0.5], ["rollout", "bogus"], "bogus"),
        (["att-rnn", "nope"], ["none"], [0.5], None, "nope"),
        (["att-rnn"], ["none", "bogus"], [0.5], None, "bogus"),
        (["att-rnn"], ["attention"], [0.5, -1.0], None, "kd-weight"),
        (["att-rnn"], ["attention"], [], None, "kd-weights"),
        ([], ["none"], [0.5], None, "students"),
    ],
)
def test_every_list_value_is_checked_before_the_teacher_runs(
    students, kd_modes, kd_weights, sources, problem, tmp_path, monkeypatch
):
    def no_extraction(*args, **kwargs):
        raise AssertionError("the teacher ran before the sweep was checked")

    monkeypatch.setattr("stages.run.extract_teacher", no_extraction)
    with pytest.raises(TkdError, match=problem):
        run_sweep(
            tmp_path / "data",
            tmp_path / "teacher",
            tmp_path / "runs",
            Sweep(students, kd_modes, kd_weights, template=TEMPLATE, teacher_attention=sources),
            cache_root=tmp_path / "cache",
        )
    assert list(tmp_path.iterdir()) == []


def test_sweep_writes_the_table_and_skips_finished_runs(
    synth_data, tiny_teacher, tmp_path, monkeypatch
):
    def sweep(jobs=1):
        return run_sweep(
            synth_data,
            tiny_teacher,
            tmp_path / "runs",
            Sweep(["tc-resnet8", "att-rnn"], ["none", "attention"], [0.25, 1.0], 2, TEMPLATE),
            cache_root=tmp_path / "cache",
            jobs=jobs,
        )

    summary = sweep()
    assert len(summary["runs"]) == 2 * (1 + 2) * 2
    for student in ("tc-resnet8", "att-rnn"):
        row = summary["table"][student]
        assert set(row) == {"none", "attention"}
        assert row["attention"]["test"]["n"] == 2
        candidates = [
            r for r in summary["runs"] if r["student"] == student and r["kd"] == "attention"
        ]
        best_valid = max(
            sum(r["valid"] for r in candidates if r["kd_weight"] == w) / 2 for w in (0.25, 1.0)
        )
        assert abs(row["attention"]["valid"]["mean"] - best_valid) < 1e-9  # λ chosen on valid
    table = (tmp_path / "runs" / "results.md").read_text()
    assert "| w/o KD |" in table and "| w/ KD: attention |" in table
    assert (tmp_path / "runs" / "results.png").stat().st_size > 0
    assert json.loads((tmp_path / "runs" / "results.json").read_text())["cache_reused"] is False

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("stages.train_student.build_student", no_training)
    again = sweep()
    assert again["cache_reused"] and again["table"] == summary["table"]


def test_parallel_jobs_give_the_same_runs(synth_data, tiny_teacher, tmp_path):
    sweep = Sweep(["tc-resnet8"], ["none", "attention"], [0.5], template=TEMPLATE)
    serial = run_sweep(synth_data, tiny_teacher, tmp_path / "a", sweep, tmp_path / "cache")
    parallel = run_sweep(
        synth_data, tiny_teacher, tmp_path / "b", sweep, tmp_path / "cache", jobs=2
    )
    assert [r["test"] for r in serial["runs"]] == [r["test"] for r in parallel["runs"]]


def test_features_and_view_features_are_computed_once_before_parallel_runs_start(
    views_data, tiny_teacher, tmp_path, monkeypatch
):
    data = shutil.copytree(views_data, tmp_path / "data", ignore=shutil.ignore_patterns(".*"))
    execute = stages.run._execute

    def execute_once_features_exist(*args, **kwargs):
        stored = sorted(path.name[:6] for path in (data / ".features").glob("*.pt"))
        assert len(stored) == 2 and stored[1] == "views-", "runs started before the features"
        return execute(*args, **kwargs)

    monkeypatch.setattr(stages.run, "_execute", execute_once_features_exist)
    sweep = Sweep(["tc-resnet8"], ["none"], [0.5], 2, replace(TEMPLATE, views=2, batch_size=4))
    extraction = ExtractionSettings(resolution=40, views=2)
    summary = run_sweep(
        data, tiny_teacher, tmp_path / "runs", sweep, tmp_path / "cache", extraction, jobs=2
    )
    assert [run["views"] for run in summary["runs"]] == [2, 2]


def test_a_sweep_that_reads_no_cache_does_not_run_the_teacher(
    synth_data, tiny_teacher, tmp_path, monkeypatch
):
    def no_teacher(*args, **kwargs):
        raise AssertionError("the teacher ran for runs without KD or views")

    monkeypatch.setattr(stages.run, "extract_teacher", no_teacher)
    sweep = Sweep(["tc-resnet8"], ["none"], [0.5], 1, TEMPLATE)
    summary = run_sweep(synth_data, tiny_teacher, tmp_path / "runs", sweep, tmp_path / "cache")
    assert summary["cache"] is None and summary["runs"][0]["test"] >= 0
    with pytest.raises(AssertionError, match="the teacher ran"):  # views read the cache
        run_sweep(
            synth_data,
            tiny_teacher,
            tmp_path / "views",
            replace(sweep, template=replace(TEMPLATE, views=2)),
            tmp_path / "cache",
        )


def test_one_run_prints_its_n_not_a_zero_spread():
    one = {"mean": 0.5, "std": None, "n": 1}  # as summarise gives one run
    two = {"mean": 0.5, "std": 0.1, "n": 2}
    entry = {"kd_weight": 0.0, "test": one, "test_in_event_mass": one, "parameters": 1, "macs": 1}
    table = {"att-rnn": {"none": entry}, "tc-resnet8": {"none": {**entry, "test": two}}}
    text = results_markdown(table, ["none"], "accuracy", None)
    assert "50.00 (n = 1)" in text and "50.00 ± 10.00 (n = 2)" in text
    assert "± 0.00" not in text
