"""Stage one's commands: ``finetune-teacher``, ``extract-teacher`` and ``cache ...``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pipeline.data.augment import AUGMENTATIONS, ViewSettings
from pipeline.teacher.presets import PRESETS
from stages.commands.base import main, print_json
from stages.commands.options import (
    CACHE_ROOT,
    DEVICE,
    EXISTING_DIR,
    NEW_PATH,
    POSITIVE,
    RESOLUTION,
    SEED,
    TEACHER,
    data_option,
    int_list,
    out_option,
)


@main.command("finetune-teacher")
@data_option()
@out_option("Teacher folder to write.")
@click.option(
    "--config",
    default=None,
    help=f"From scratch: a preset ({', '.join(PRESETS)}) or a JSON file.",
)
@click.option(
    "--init",
    default=None,
    help="From pretrained weights: whisper-tiny.en, whisper-base, or any `teacher import` source.",
)
@click.option("--epochs", default=None, type=POSITIVE, help="[default: the recipe's: 20 or 3]")
@click.option("--steps", default=None, type=POSITIVE, help="Total steps (overrides --epochs).")
@click.option("--batch-size", default=16, type=POSITIVE)
@click.option("--lr", default=None, type=float, help="[default: the recipe's: 3e-4 or 1e-4]")
@click.option("--remix/--no-remix", default=False, help="Re-mix generated clips at every step.")
@click.option("--patience", default=5, type=int, help="Early stopping on valid (0: off).")
@click.option("--workers", "num_workers", default=0, type=int, help="DataLoader workers.")
@SEED
@DEVICE
def finetune_teacher_command(data, out, config, init, patience, **options) -> None:
    """Fine-tune (or train from scratch) the transformer teacher."""
    from stages.finetune_teacher import TeacherTrainingOptions, finetune_teacher

    settings = TeacherTrainingOptions(patience=patience or None, **options)
    results = finetune_teacher(data, out, config=config, init=init, options=settings)
    print_json(results, leave_out="history")
    click.echo(out)


@main.group()
def teacher() -> None:
    """Pretrained teachers."""


@teacher.command("import")
@click.argument("source")
@out_option("Teacher folder to write.")
@click.option("--seconds", default=None, type=float, help="Clip length: the Whisper window.")
@data_option(required=False, help="Take the window from its longest clip.")
def teacher_import_command(source, out, seconds, data) -> None:
    """Turn SOURCE (a preset, CTranslate2/HF folder or OpenAI .pt) into a teacher folder."""
    from stages.import_teacher import import_teacher

    print_json(import_teacher(source, out, seconds=seconds, data=data))


def _view_settings(_ctx, _param, value: str) -> ViewSettings:
    """``--augment a,b``: the augmentations of views 1.., each checked by name."""
    try:
        return ViewSettings(augment=tuple(x.strip() for x in value.split(",") if x.strip()))
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@main.command("extract-teacher")
@data_option()
@TEACHER
@CACHE_ROOT
@RESOLUTION
@click.option(
    "--layers", default="all", callback=int_list, help="'all' or comma-separated 1-based layers."
)
@click.option("--shard-size", default=256, type=int, help="Clips per HDF5 shard.")
@click.option("--batch-size", default=8, type=int)
@click.option("--workers", default=0, type=int, help="Start a local dask cluster of N workers.")
@click.option(
    "--scheduler", default=None, help="Address of an existing dask.distributed scheduler."
)
@click.option(
    "--store-maps", is_flag=True, help="Also store full per-layer maps at R x R (float16)."
)
@click.option(
    "--skip-bad",
    is_flag=True,
    help="Skip unreadable clips (listed in index.json) instead of stopping.",
)
@click.option(
    "--views",
    default=1,
    type=POSITIVE,
    help="Teacher outputs cached per clip: view 0 as it is, views 1.. augmented (--augment).",
)
@click.option(
    "--augment",
    default=",".join(ViewSettings().augment),
    callback=_view_settings,
    help=f"Augmentations of views 1.., comma-separated: {', '.join(AUGMENTATIONS)}.",
)
@click.option("--view-seed", default=0, type=int, help="Seed the views are drawn from.")
@DEVICE
def extract_teacher_command(
    data, teacher, cache_root, shard_size, workers, scheduler, device, **settings
) -> None:
    """Stage one: run the teacher once per clip and cache its temporal attention."""
    from pipeline.teacher.extraction import ExtractionSettings
    from pipeline.training import resolve_device
    from stages.extract_teacher import extract_teacher

    if workers and scheduler:
        raise click.UsageError("give --workers or --scheduler, not both")
    extraction = ExtractionSettings(device=str(resolve_device(device)), **settings)
    result = extract_teacher(data, teacher, cache_root, extraction, shard_size, workers, scheduler)
    if result.summary.get("reused"):
        click.echo("cache is complete: no teacher work done", err=True)
    print_json(result.summary)
    click.echo(result.cache_dir)


@main.group()
def cache() -> None:
    """Inspect and maintain teacher caches."""


ROOT = click.option("--root", default="cache", type=NEW_PATH)


@cache.command("list")
@ROOT
def cache_list(root: Path) -> None:
    """Caches under --root: key, dataset, teacher, clips, size, created."""
    from stages.cache_admin import human_size, list_caches

    for entry in list_caches(root):
        if entry.get("problem"):
            click.echo(f"{entry['key']}  unusable: {entry['problem']}")
            continue
        click.echo(
            f"{entry['key']}  {entry['clips']:>7} clips  {human_size(entry['bytes']):>8}  "
            f"{entry['created']}  data={entry['dataset']}  teacher={entry['teacher']}"
        )


@cache.command("verify")
@click.argument("directory", type=EXISTING_DIR)
def cache_verify(directory: Path) -> None:
    """Check every shard, id and vector of one cache; exit 1 on any problem."""
    from stages.cache_admin import verify_cache

    problems = verify_cache(directory)
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        sys.exit(1)
    click.echo(f"{directory}: ok")


@cache.command("gc")
@ROOT
def cache_gc(root: Path) -> None:
    """Remove temporaries left by interrupted extractions."""
    from stages.cache_admin import collect_garbage

    removed = collect_garbage(root)
    for path in removed:
        click.echo(f"removed {path}")
    click.echo(f"{len(removed)} temporaries removed")
