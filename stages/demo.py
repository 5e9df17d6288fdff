"""`tkd demo` (what `make demo` runs): the whole chain on the embedded synthetic data,
sized for a 2-core CPU: prepare, train a tiny Whisper-encoder teacher, extract its
attention once, train an attention student and a non-attention student with and
without attention KD, and print the table."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.data.recipes.synth import SynthConfig, prepare_synth
from pipeline.teacher.extraction import ExtractionSettings
from pipeline.training import resolve_device
from stages.finetune_teacher import TeacherTrainingOptions, finetune_teacher
from stages.run import Sweep, run_sweep
from stages.train_student import StudentTrainingOptions


@dataclass(frozen=True)
class DemoSettings:
    students: tuple[str, ...] = ("att-rnn", "tc-resnet8")
    teacher_config: str = "whisper-tiny"
    teacher_epochs: int = 40
    student_epochs: int = 40
    student_batch_size: int = 32
    kd_weight: float = 0.5
    # The paper's rollout, and the teacher's first layer, which is the most localised
    # in small from-scratch teachers (see docs/results.md).
    teacher_attention: tuple[str, ...] = ("rollout", "layer:1")
    seeds: int = 1
    device: str = "auto"


def run_demo(
    out: str | Path = "demo",
    data: str | Path | None = None,
    settings: DemoSettings = DemoSettings(),
) -> dict[str, Any]:
    """Run (or resume) the demo under ``out``; every finished step is reused on a rerun."""
    started = time.time()
    device = resolve_device(settings.device)  # refuse a bad device before writing anything
    out = Path(out)
    if data is None:
        data = out / "data"
        if not (data / "manifest.jsonl").is_file():
            prepare_synth(data, SynthConfig())
    teacher = out / "teacher"
    if not (teacher / "metrics.json").is_file():
        finetune_teacher(
            data,
            teacher,
            config=settings.teacher_config,
            options=TeacherTrainingOptions(
                epochs=settings.teacher_epochs,
                lr=2e-3,
                remix=True,
                patience=None,
                device=settings.device,
            ),
        )
    teacher_metrics = json.loads((teacher / "metrics.json").read_text())
    summary = run_sweep(
        data,
        teacher,
        out / "runs",
        Sweep(
            list(settings.students),
            ["none", "attention"],
            [settings.kd_weight],
            settings.seeds,
            StudentTrainingOptions(
                epochs=settings.student_epochs,
                batch_size=settings.student_batch_size,
                device=settings.device,
            ),
            list(settings.teacher_attention),
        ),
        cache_root=out / "cache",
        extraction=ExtractionSettings(device=str(device)),
    )
    return {
        "seconds": round(time.time() - started, 1),
        "teacher": {
            "folder": str(teacher),
            "valid": teacher_metrics["valid"],
            "test": teacher_metrics.get("test"),
        },
        "cache": summary["cache"],
        "teacher_in_event_mass": summary["teacher_in_event_mass"],
        "results": str(out / "runs" / "results.md"),
        "table": (out / "runs" / "results.md").read_text(),
    }
