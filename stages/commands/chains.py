"""Commands that chain the stages: ``run`` (a sweep) and ``demo`` (end to end)."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.student.architectures import STUDENTS
from pipeline.student.losses import KD_MODES, KD_WEIGHT_GRID
from stages.commands.base import main, print_json
from stages.commands.options import (
    CACHE_ROOT,
    DEVICE,
    POSITIVE,
    RESOLUTION,
    STUDENT_TRAINING,
    TEACHER,
    data_option,
    float_list,
    names_option,
    out_option,
    student_options,
    teacher_attention_option,
)


@main.command("run")
@data_option()
@TEACHER
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
    data,
    teacher,
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
    """Chain extract-teacher and a sweep of train-student runs; write the results table."""
    from pipeline.teacher.extraction import ExtractionSettings
    from pipeline.training import resolve_device
    from stages.run import run_sweep

    device = str(resolve_device(values["device"]))
    summary = run_sweep(
        data,
        teacher,
        out,
        students,
        kd_modes,
        kd_weights,
        seeds,
        student_options(**values),
        cache_root,
        ExtractionSettings(resolution=resolution, device=device),
        jobs,
        scheduler,
        teacher_attention=[x.strip() for x in teacher_attention.split(",")],
    )
    if summary["cache_reused"]:
        click.echo(f"reused the teacher cache {summary['cache']}", err=True)
    click.echo((Path(out) / "results.md").read_text())
    click.echo(Path(out) / "results.json")


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
