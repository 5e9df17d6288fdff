"""Stage two's commands: ``train-student``, ``evaluate`` and ``plot-attention``."""

from __future__ import annotations

import click

from pipeline.student.architectures import STUDENTS
from pipeline.student.losses import KD_MODES
from stages.commands.base import main, print_json
from stages.commands.options import (
    DEVICE,
    EXISTING_DIR,
    RUN,
    SEED,
    SPLIT,
    STUDENT,
    STUDENT_TRAINING,
    choice,
    data_option,
    out_option,
    student_options,
    teacher_attention_option,
)


@main.command("train-student")
@data_option()
@click.option("--student", required=True, type=choice(STUDENTS))
@click.option(
    "--cache", default=None, type=EXISTING_DIR, help="Teacher cache folder (needed for any KD)."
)
@click.option("--kd", default=STUDENT["kd"], type=choice(KD_MODES))
@out_option("Run folder.")
@click.option(
    "--kd-weight", default=STUDENT["kd_weight"], type=float, help="lambda of the attention KL."
)
@teacher_attention_option(many=False)
@SEED
@STUDENT_TRAINING
def train_student_command(data, student, cache, kd, out, seed, **values) -> None:
    """Stage two: train one student from the cache (the teacher is never loaded)."""
    from stages.train_student import train_student

    results = train_student(
        data, out, cache, student_options(student=student, kd=kd, seed=seed, **values)
    )
    print_json(results, leave_out="history")
    click.echo(out)


@main.command("evaluate")
@RUN
@data_option(required=False)
@SPLIT
@DEVICE
def evaluate_command(run, data, split, device) -> None:
    """Re-measure a run's best checkpoint (metric and in-event attention mass)."""
    from stages.evaluate import evaluate_run

    print_json(evaluate_run(run, data, split, device))


@main.command("plot-attention")
@RUN
@click.option("--cache", required=True, type=EXISTING_DIR, help="Teacher cache folder.")
@click.option("--clip", "clip_id", required=True, help="Clip id.")
@out_option("PNG file.")
@data_option(required=False)
def plot_attention_command(run, cache, clip_id, out, data) -> None:
    """Draw a clip's spectrogram with the teacher's and the student's attention."""
    from stages.evaluate import plot_attention

    click.echo(plot_attention(run, cache, clip_id, out, data))
