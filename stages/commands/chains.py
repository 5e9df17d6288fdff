"""Commands that chain the stages: ``run`` (a sweep) and ``demo`` (end to end)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from pipeline.student.architectures import STUDENTS
from pipeline.student.losses import KD_MODES, KD_WEIGHT_GRID
from stages.commands.base import main, print_json
from stages.commands.options import (
    CACHE_ROOT,
    DEVICE,
    EXISTING_DIR,
    POSITIVE,
    RESOLUTION,
    STUDENT_TRAINING,
    data_option,
    float_list,
    names_option,
    out_option,
    student_options,
    teacher_attention_option,
)


@main.command("run")
@click.option(
    "--data",
    "datasets",
    required=True,
    multiple=True,
    type=EXISTING_DIR,
    help="Prepared dataset; repeat it for folds (one per speaker fold).",
)
@click.option(
    "--teacher",
    "teachers",
    multiple=True,
    type=EXISTING_DIR,
    help="Fine-tuned teacher folder, one per --data in order.",
)
@click.option(
    "--teacher-init",
    default=None,
    help="Instead of --teacher: fine-tune one per fold from this preset or checkpoint.",
)
@click.option("--teacher-epochs", default=None, type=POSITIVE, help="With --teacher-init.")
@names_option("--students", STUDENTS, "all")
@names_option("--kd", KD_MODES, "none,attention", "kd_modes")
@click.option(
    "--kd-weights",
    default=",".join(f"{w:g}" for w in KD_WEIGHT_GRID),
    callback=float_list,
    help="lambdas to sweep (chosen per student on valid).",
)
@click.option("--seeds", default=3, type=POSITIVE, help="Seeds per setting.")
@out_option("Runs folder.")
@CACHE_ROOT
@RESOLUTION
@click.option("--jobs", default=1, type=POSITIVE, help="Student runs in parallel (processes).")
@click.option(
    "--scheduler", default=None, help="dask.distributed scheduler for extraction and runs."
)
@teacher_attention_option(many=True)
@STUDENT_TRAINING
def run_command(
    datasets,
    teachers,
    teacher_init,
    teacher_epochs,
    students,
    kd_modes,
    kd_weights,
    seeds,
    out,
    cache_root,
    resolution,
    jobs,
    scheduler,
    teacher_attention,
    **values,
) -> None:
    """Chain extract-teacher and a sweep of train-student runs; write the results table.

    With several --data (speaker folds) or --teacher-init, every fold gets its own teacher,
    cache and sweep, and results.md pools them: mean ± std over folds × seeds and the
    paired KD gain with its 95 % interval."""
    from pipeline.teacher.extraction import ExtractionSettings
    from pipeline.training import resolve_device
    from stages.folds import folds_from, run_folds
    from stages.run import Sweep, run_sweep

    if bool(teachers) == bool(teacher_init):
        raise click.UsageError("give --teacher (one per --data) or --teacher-init, not both")
    device = str(resolve_device(values["device"]))
    sweep = Sweep(
        students,
        kd_modes,
        kd_weights,
        seeds,
        student_options(student=students[0], **values),  # a sweep checks each student
        [x.strip() for x in teacher_attention.split(",")],
    )
    where = dict(
        cache_root=cache_root,
        extraction=ExtractionSettings(resolution=resolution, device=device, views=values["views"]),
        jobs=jobs,
        scheduler=scheduler,
    )
    if len(datasets) == 1 and teachers:
        summary = run_sweep(datasets[0], teachers[0], out, sweep, **where)
        if summary["cache_reused"]:
            click.echo(f"reused the teacher cache {summary['cache']}", err=True)
    else:
        run_folds(
            folds_from(list(datasets), list(teachers)),
            out,
            sweep,
            teacher_init,
            _teacher_options(teacher_init, teacher_epochs, device),
            **where,
        )
    click.echo((Path(out) / "results.md").read_text())
    click.echo(Path(out) / "results.json")


def _teacher_options(init: str | None, epochs: int | None, device: str):
    from stages.finetune_teacher import TeacherTrainingOptions

    if init is None:
        return None
    options = TeacherTrainingOptions(device=device)
    return options if epochs is None else replace(options, epochs=epochs)


@main.command("demo")
@out_option("Folder for everything.", default="demo")
@data_option(required=False, help="Use this prepared dataset instead.")
@click.option("--seeds", default=1, type=POSITIVE)
@DEVICE
def demo_command(out, data, seeds, device) -> None:
    """End to end on the embedded synthetic data (a few minutes on a 2-core CPU)."""
    from stages.demo import DemoSettings, run_demo

    result = run_demo(out, data, DemoSettings(seeds=seeds, device=device))
    click.echo(result["table"])
    print_json(result, leave_out="table")
