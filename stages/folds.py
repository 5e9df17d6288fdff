"""`tkd run` over folds: the same sweep on each speaker fold, judged by paired KD gains.

A fold is a prepared dataset (for noisy digits: ``data noisy-digits --fold K --folds N``)
and its teacher, either given or fine-tuned here from ``teacher_init`` into
``<out>/<fold>/teacher`` (one fine-tune and one cache per fold: a teacher that heard the
test speakers would leak them). Each fold's sweep is an ordinary :func:`run_sweep` in
``<out>/<fold>/``; the folds are then pooled by :mod:`pipeline.stats`: every condition's
test score as mean ± std over folds × seeds with n, and each KD condition's gain paired
with the no-KD run of the same fold and seed, with its 95 % interval. Finished teachers
and student runs are reused on a rerun, so an interrupted protocol resumes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import TkdError
from pipeline.files import write_json, write_text
from pipeline.stats import ConditionResult, RunRecord, compare, markdown_table
from pipeline.teacher.extraction import ExtractionSettings
from stages.finetune_teacher import TeacherTrainingOptions, finetune_teacher
from stages.run import Sweep, run_sweep

TEACHER_FOLDER = "teacher"


@dataclass(frozen=True)
class Fold:
    """One fold: its name (the results' key), its dataset and, if already made, its teacher."""

    name: str
    data: Path
    teacher: Path | None = None


def folds_from(data: list[str | Path], teachers: list[str | Path] | None) -> list[Fold]:
    """Folds named after their dataset folders; ``teachers`` pairs with ``data`` in order."""
    if teachers and len(teachers) != len(data):
        raise TkdError(f"give one --teacher per --data ({len(data)}), got {len(teachers)}")
    names = [Path(path).name for path in data]
    if len(set(names)) != len(names):
        raise TkdError(f"fold datasets need distinct folder names, got {names}")
    return [
        Fold(name, Path(path), Path(teachers[i]) if teachers else None)
        for i, (name, path) in enumerate(zip(names, data))
    ]


def fold_teacher(
    fold: Fold, out: Path, teacher_init: str, options: TeacherTrainingOptions | None
) -> Path:
    """The fold's teacher: given, already fine-tuned by an earlier run, or fine-tuned now."""
    if fold.teacher is not None:
        return fold.teacher
    folder = out / fold.name / TEACHER_FOLDER
    if not (folder / "metrics.json").is_file():  # written last: the teacher is finished
        finetune_teacher(fold.data, folder, init=teacher_init, options=options)
    return folder


def run_records(fold: str, summary: dict[str, Any], key: str = "test") -> list[RunRecord]:
    """A fold's sweep as :class:`RunRecord` s of ``key`` (the test score, or another
    per-run number such as ``test_in_event_mass``); λ and source only where KD uses them."""
    records = []
    for run in summary["runs"]:
        if run.get(key) is None:
            continue
        uses_weight = run["kd"] != "none"
        uses_source = run["kd"] in ("attention", "both")
        records.append(
            RunRecord(
                fold=fold,
                seed=run["seed"],
                student=run["student"],
                kd=run["kd"],
                weight=run["kd_weight"] if uses_weight else None,
                source=run["teacher_attention"] if uses_source else None,
                metric=run[key],
            )
        )
    return records


def run_folds(
    folds: list[Fold],
    out: str | Path,
    sweep: Sweep,
    teacher_init: str | None = None,
    teacher_options: TeacherTrainingOptions | None = None,
    cache_root: str | Path = "cache",
    extraction: ExtractionSettings | None = None,
    jobs: int = 1,
    scheduler: str | None = None,
) -> dict[str, Any]:
    """Every fold's teacher and sweep, then the pooled table with paired KD gains."""
    sweep.runs()  # checked before any teacher work
    if not folds:
        raise TkdError("give at least one fold dataset")
    if teacher_init is None and any(fold.teacher is None for fold in folds):
        raise TkdError("give every fold's --teacher, or a --teacher-init to fine-tune them")
    out = Path(out)
    per_fold, records, masses = [], [], []
    for fold in folds:
        teacher = fold_teacher(fold, out, teacher_init, teacher_options)
        summary = run_sweep(
            fold.data, teacher, out / fold.name, sweep, cache_root, extraction, jobs, scheduler
        )
        records += run_records(fold.name, summary)
        masses += run_records(fold.name, summary, "test_in_event_mass")
        per_fold.append(fold_summary(fold, teacher, summary))
    table = compare(records)
    results = {
        "metric": per_fold[0]["metric"],
        "folds": per_fold,
        "runs": [record.__dict__ for record in records],
        "table": pooled_rows(table, compare(masses)),
    }
    write_json(out / "results.json", results)
    write_text(out / "results.md", _markdown(per_fold, table))
    return results


def fold_summary(fold: Fold, teacher: Path, summary: dict[str, Any]) -> dict[str, Any]:
    teacher_metrics = teacher / "metrics.json"
    return {
        "fold": fold.name,
        "data": str(fold.data),
        "teacher": str(teacher),
        "teacher_test": summary["teacher_test"],
        "teacher_wall_seconds": json.loads(teacher_metrics.read_text()).get("wall_seconds")
        if teacher_metrics.is_file()
        else None,
        "teacher_in_event_mass": summary["teacher_in_event_mass"],
        "attention_sources": {  # requested -> what this fold's runs used ("auto" resolved)
            run["teacher_attention"]: run.get("teacher_attention_source")
            for run in summary["runs"]
            if run["kd"] in ("attention", "both")
        },
        "cache": summary["cache"],
        "metric": summary["metric"],
    }


def pooled_rows(
    scores: list[ConditionResult], masses: list[ConditionResult]
) -> list[dict[str, Any]]:
    """Each condition's test score and paired gain, with the share of the student's
    attention inside the event (mean ± std over the same runs) beside it."""
    mass = {_condition(row): row.score.__dict__ for row in masses}
    return [{**_row(row), "test_in_event_mass": mass.get(_condition(row))} for row in scores]


def _condition(row: ConditionResult) -> tuple:
    return row.student, row.kd, row.weight, row.source


def _row(row: ConditionResult) -> dict[str, Any]:
    gain = row.gain
    return {
        "student": row.student,
        "kd": row.kd,
        "kd_weight": row.weight,
        "source": row.source,
        "test": row.score.__dict__,
        "paired_gain": None if gain is None else gain.to_json(),
    }


def _markdown(per_fold: list[dict[str, Any]], table) -> str:
    lines = ["Teachers (test, per fold):", ""]
    lines += [
        f"- {fold['fold']}: "
        + ("–" if fold["teacher_test"] is None else f"{fold['teacher_test'] * 100:.1f}")
        for fold in per_fold
    ]
    lines += ["", f"Students, test {per_fold[0]['metric']} (%) over folds × seeds:", ""]
    return "\n".join(lines) + "\n" + markdown_table(table)
