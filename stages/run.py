"""`tkd run`: chain the stages, one extraction then a sweep of student runs.

The teacher runs once (or its cache is found); then one ``train-student`` per
(student, kd, lambda, seed), in process, in parallel local processes (``jobs``), or as
tasks on a ``dask.distributed`` cluster (``scheduler``), every one reading the same cache.
Finished runs are skipped on a rerun. Results: ``results.json``, ``results.md`` (the
paper's table: rows w/o and w/ KD, columns students, mean ± std over seeds), ``results.png``.
"""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline import stats
from pipeline.errors import TkdError
from pipeline.files import write_json, write_text
from pipeline.progress import progress
from pipeline.student.architectures import STUDENTS
from pipeline.student.losses import KD_MODES
from pipeline.teacher.extraction import ExtractionSettings
from stages.extract_teacher import extract_teacher
from stages.train_student import (
    StudentTrainingOptions,
    prepare_features,
    reads_cache,
    train_student,
)


@dataclass(frozen=True)
class RunSpec:
    """One student run of a sweep and where it lives."""

    student: str
    kd: str
    kd_weight: float
    teacher_attention: str
    seed: int

    @property
    def setting(self) -> str:
        """A table row: the KD mode, and which teacher attention when it is not the default."""
        if self.kd in ("none", "logits") or self.teacher_attention == "rollout":
            return self.kd
        return f"{self.kd} ({self.teacher_attention})"

    @property
    def folder(self) -> str:
        setting = self.setting.replace(" (", "-").replace(")", "").replace(":", "")
        weight = "" if self.kd == "none" else f"-w{self.kd_weight:g}"
        return f"{self.student}/{setting}{weight}/seed{self.seed}"


def plan_runs(
    students: list[str],
    kd_modes: list[str],
    kd_weights: list[float],
    seeds: int,
    teacher_attention: list[str] | None = None,
) -> list[RunSpec]:
    """Every (student, kd, teacher attention, lambda, seed); lambda and the teacher's
    attention only vary where the KD mode uses them."""
    sources = teacher_attention or ["rollout"]
    return [
        RunSpec(student, kd, weight, source, seed)
        for student in students
        for kd in kd_modes
        for source in (sources if kd in ("attention", "both") else ["rollout"])
        for weight in ([0.0] if kd == "none" else kd_weights)
        for seed in range(seeds)
    ]


def _train_one(
    data: str, folder: str, cache: str, options: StudentTrainingOptions
) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)  # many small runs side by side: one core each
    return train_student(data, folder, cache, options)


@dataclass(frozen=True)
class Sweep:
    """What a sweep varies: one run per (student, KD mode, teacher attention, λ, seed), each
    ``template`` with those fields replaced (``template.kd_weight`` is not used)."""

    students: list[str]
    kd_modes: list[str]
    kd_weights: list[float]
    seeds: int = 1
    template: StudentTrainingOptions = field(default_factory=StudentTrainingOptions)
    teacher_attention: list[str] | None = None

    def runs(self) -> tuple[list[RunSpec], list[StudentTrainingOptions]]:
        """Every run and its options, all built (hence checked) before any work starts: a
        bad value late in a list must not surface after the teacher has run."""
        for flag, values, known in (
            ("students", self.students, STUDENTS),
            ("kd", self.kd_modes, KD_MODES),
        ):
            if not values:
                raise TkdError(f"--{flag}: give at least one of {', '.join(known)}")
            unknown = [value for value in values if value not in known]
            if unknown:
                raise TkdError(f"--{flag}: unknown {unknown}; choose from {', '.join(known)}")
        if not self.kd_weights and any(kd != "none" for kd in self.kd_modes):
            raise TkdError("--kd-weights: give at least one lambda for the KD modes")
        if self.seeds < 1:
            raise TkdError(f"--seeds must be at least 1, got {self.seeds}")
        for source in self.teacher_attention or []:  # also those no KD mode of this sweep uses
            replace(self.template, teacher_attention=source)
        specs = plan_runs(
            self.students, self.kd_modes, self.kd_weights, self.seeds, self.teacher_attention
        )
        options = [
            replace(
                self.template,
                student=spec.student,
                kd=spec.kd,
                kd_weight=spec.kd_weight,
                teacher_attention=spec.teacher_attention,
                seed=spec.seed,
            )
            for spec in specs
        ]
        return specs, options


def _execute(specs, options, data, out, cache, jobs, scheduler) -> list[dict[str, Any]]:
    arguments = [
        (str(data), str(out / spec.folder), str(cache) if cache else None, run_options)
        for spec, run_options in zip(specs, options, strict=True)
    ]
    if scheduler:
        from dask.distributed import Client

        with Client(scheduler) as client:
            futures = [client.submit(_train_one, *args, pure=False) for args in arguments]
            return [
                future.result() for future in progress(futures, desc="student runs", unit="run")
            ]
    if jobs > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = [pool.submit(_train_one, *args) for args in arguments]
            return [
                future.result() for future in progress(futures, desc="student runs", unit="run")
            ]
    return [train_student(*args) for args in progress(arguments, desc="student runs", unit="run")]


def _mean_std(values: list[float]) -> dict[str, float | None]:
    return stats.summarise(values).__dict__  # std is None for one run


def summarise(specs: list[RunSpec], results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per student: the baseline and, per KD mode, the lambda chosen on mean valid score
    (the paper's protocol), each as mean ± std of the test score over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for spec, result in zip(specs, results):
        groups.setdefault((spec.student, spec.setting, spec.kd_weight), []).append(result)
    table: dict[str, dict[str, Any]] = {}
    for (student, setting, weight), runs in groups.items():
        entry = {
            "kd_weight": weight,
            "valid": _mean_std([r["valid"] for r in runs]),
            "test": _mean_std([r["test"] for r in runs]),
            "test_in_event_mass": _mean_std(
                [r["test_in_event_mass"] for r in runs if r.get("test_in_event_mass") is not None]
                or [float("nan")]
            ),
            "parameters": runs[0]["parameters"],
            "macs": runs[0]["macs"],
        }
        best = table.setdefault(student, {}).get(setting)
        if best is None or entry["valid"]["mean"] > best["valid"]["mean"]:
            table[student][setting] = entry
    return table


def _cell(entry: dict[str, Any] | None, key: str = "test", scale: float = 100.0) -> str:
    if entry is None:
        return "–"
    return stats.Summary(**entry[key]).format(scale, digits=2)  # one run: its n, no "± 0.00"


def _label(setting: str) -> str:
    return "w/o KD" if setting == "none" else f"w/ KD: {setting}"


def results_markdown(
    table: dict[str, Any], settings: list[str], metric: str, teacher: dict | None
) -> str:
    students = list(table)
    lines = [
        f"Test {metric} (%), mean ± std over seeds; KD rows use each student's λ chosen on valid.",
        "",
        "| | " + " | ".join(students) + (" | teacher |" if teacher else " |"),
        "|---" * (len(students) + 1 + bool(teacher)) + "|",
    ]
    for setting in settings:
        cells = [_cell(table[s].get(setting)) for s in students]
        first = setting == settings[0]
        teacher_cell = [f"{teacher['test'] * 100:.2f}" if first else ""] if teacher else []
        lines.append(f"| {_label(setting)} | " + " | ".join(cells + teacher_cell) + " |")
    lines += [
        "",
        "Chosen λ and the share of the student's attention inside the event (test):",
        "",
        "| student | KD | λ | in-event mass | params | MACs |",
        "|---|---|---|---|---|---|",
    ]
    for student in students:
        for setting, entry in table[student].items():
            mass = entry["test_in_event_mass"]["mean"]
            lines.append(
                f"| {student} | {setting} | {entry['kd_weight']:g} | {mass:.3f} | "
                f"{entry['parameters']:,} | {entry['macs']:,} |"
            )
    return "\n".join(lines) + "\n"


def _plot(table: dict[str, Any], settings: list[str], metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    students = list(table)
    width = 0.8 / len(settings)
    figure, axis = plt.subplots(figsize=(1.6 * len(students) + 2, 3.5))
    for i, setting in enumerate(settings):
        entries = [table[s].get(setting) for s in students]
        means = [e["test"]["mean"] * 100 if e else 0 for e in entries]
        stds = [(e["test"]["std"] or 0) * 100 if e else 0 for e in entries]
        axis.bar(
            [x + i * width for x in range(len(students))],
            means,
            width,
            yerr=stds,
            label=_label(setting),
            capsize=3,
        )
    axis.set_xticks([x + width * (len(settings) - 1) / 2 for x in range(len(students))], students)
    axis.set_ylabel(f"test {metric} (%)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def run_sweep(
    data: str | Path,
    teacher: str | Path,
    out: str | Path,
    sweep: Sweep,
    cache_root: str | Path = "cache",
    extraction: ExtractionSettings | None = None,
    jobs: int = 1,
    scheduler: str | None = None,
) -> dict[str, Any]:
    """Extract (or reuse) the teacher cache, train every run of ``sweep``, write the tables.
    Every run's options are checked before the teacher runs; a sweep none of whose runs
    reads the cache (no KD, no views) does not run the teacher."""
    specs, options = sweep.runs()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = (
        extract_teacher(data, teacher, cache_root, extraction, scheduler=scheduler)
        if any(reads_cache(run) for run in options)
        else None
    )
    cache_dir = cache.cache_dir if cache is not None else None
    settings = list(dict.fromkeys(spec.setting for spec in specs))
    prepare_features(data, options, cache_dir)  # before runs that may run side by side
    results = _execute(specs, options, data, out, cache_dir, jobs, scheduler)
    table = summarise(specs, results)
    metric = results[0]["metric"]
    teacher_metrics_path = Path(teacher) / "metrics.json"
    teacher_metrics = (
        json.loads(teacher_metrics_path.read_text()) if teacher_metrics_path.is_file() else None
    )
    summary = {
        "data": str(data),
        "teacher": str(teacher),
        "cache": str(cache_dir) if cache_dir else None,
        "cache_reused": bool(cache and cache.summary.get("reused")),
        "metric": metric,
        "teacher_in_event_mass": cache.summary.get("in_event_mass") if cache else None,
        "teacher_test": teacher_metrics.get("test") if teacher_metrics else None,
        "table": table,
        "runs": [
            {
                **spec.__dict__,
                "folder": spec.folder,
                **{k: v for k, v in r.items() if k != "history"},
            }
            for spec, r in zip(specs, results)
        ],
    }
    write_json(out / "results.json", summary)
    write_text(out / "results.md", results_markdown(table, settings, metric, teacher_metrics))
    _plot(table, settings, metric, out / "results.png")
    return summary
