"""Deployment commands: ``export`` (the student alone as one graph) and ``profile``."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.student.export import FORMATS, QUANTIZATIONS
from stages.commands.base import main, print_json
from stages.commands.options import NEW_PATH, SPLIT, choice, data_option

# Not an existing folder: a missing run is the stage's one-line error, naming the file.
RUN = click.option("--run", required=True, type=NEW_PATH, help="Student run folder.")


@main.command("export")
@RUN
@click.option("--format", "fmt", required=True, type=choice(FORMATS), help="Graph format.")
@click.option(
    "--out",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Model file (default: RUN/export/student[-int8].pt|.onnx); settings JSON beside it.",
)
@click.option(
    "--quantize",
    default=None,
    type=choice(QUANTIZATIONS),
    help="Dynamic int8 weights (dense and recurrent layers); accuracy measured on --data.",
)
@data_option(required=False, help="Dataset to measure on (default: the run's).")
@SPLIT
def export_command(run, fmt, out, quantize, data, split) -> None:
    """Ship the student alone (no auxiliary head): front end + student as one graph."""
    from stages.export import export_run

    result = export_run(run, fmt, out, quantize, data, split)
    shown = ("format", "quantize", "student", "bytes", "parity", "int8_parity", "accuracy")
    print_json({k: result[k] for k in shown if k in result})
    click.echo(result["path"])


@main.command("profile")
@RUN
@click.option("--repeats", default=50, type=int, help="Timed runs per model, after the warm-up.")
@click.option("--warmup", default=10, type=int, help="Untimed runs first.")
@click.option("--int8/--no-int8", default=True, help="Also profile dynamic int8 exports.")
def profile_command(run, repeats, warmup, int8) -> None:
    """Params, MACs, file size and one-thread CPU latency of the model and its exports."""
    from stages.export import profile_run, profile_table

    result = profile_run(run, repeats=repeats, warmup=warmup, quantized=int8)
    click.echo(profile_table(result))
    click.echo(Path(run) / "profile.json")
