"""Options used by more than one command, defined once, with their choices, defaults and
help taken from the registries and option classes in ``pipeline/`` and ``stages/``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import MISSING, fields
from pathlib import Path

import click

from pipeline.cache import SOURCE_FORMS
from pipeline.data.manifest import SPLITS
from pipeline.errors import TkdError
from pipeline.student.features import FEATURE_KINDS
from stages.train_student import VIEW_FEATURES, StudentTrainingOptions

Decorator = Callable[[Callable], Callable]
POSITIVE = click.IntRange(min=1)
EXISTING_DIR = click.Path(exists=True, file_okay=False, path_type=Path)
NEW_PATH = click.Path(path_type=Path)


def choice(names: Iterable[str]) -> click.Choice:
    """A Choice over a registry's names (a dict's keys or a tuple)."""
    return click.Choice(list(names))


def defaults(options_class: type) -> dict[str, object]:
    """The default of every field of an options dataclass: the CLI shows the same ones."""
    return {
        f.name: f.default if f.default is not MISSING else f.default_factory()
        for f in fields(options_class)
        if f.default is not MISSING or f.default_factory is not MISSING
    }


STUDENT = defaults(StudentTrainingOptions)


def _device(_ctx, _param, value: str) -> str:
    """Refuse an unusable device before anything is written."""
    from pipeline.training import resolve_device

    try:
        resolve_device(value)
    except TkdError as error:
        raise click.BadParameter(str(error)) from None
    return value


def float_list(_ctx, _param, value: str | None) -> list[float] | None:
    if value is None:
        return None
    try:
        return [float(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers") from None


def int_list(_ctx, _param, value: str) -> tuple[int, ...] | None:
    """``all`` (None) or comma-separated non-negative integers."""
    if value == "all":
        return None
    try:
        numbers = tuple(int(x) for x in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not 'all' or comma-separated integers") from None
    if min(numbers) < 0:
        raise click.BadParameter(f"{value!r}: numbers must not be negative")
    return numbers


def _snr_range(ctx, param, value: str | None) -> dict:
    """``--snr MIN,MAX`` as the recipes' keyword (empty: the recipe's default)."""
    numbers = float_list(ctx, param, value)
    if numbers is None:
        return {}
    if len(numbers) != 2 or numbers[0] > numbers[1]:
        raise click.BadParameter(f"{value!r}: give MIN,MAX in dB with MIN <= MAX")
    return {"snr_db": tuple(numbers)}


def names_option(flag: str, names: Iterable[str], default: str, *dest: str) -> Decorator:
    """A comma-separated list of a registry's names, or ``all`` (each checked by the stage)."""
    known = list(names)

    def parse(_ctx, _param, value: str) -> list[str]:
        return known if value == "all" else [x.strip() for x in value.split(",") if x.strip()]

    return click.option(
        flag,
        *dest,
        default=default,
        callback=parse,
        help=f"Comma-separated, or 'all': {', '.join(known)}.",
    )


def compose(*options: Decorator) -> Decorator:
    """Several options as one decorator, in the order given."""

    def apply(function: Callable) -> Callable:
        for option in reversed(options):
            function = option(function)
        return function

    return apply


def data_option(required: bool = True, help: str | None = None) -> Decorator:
    """``--data``: a prepared dataset folder; optional where a run knows its own."""
    if help is None:
        help = "Prepared dataset folder." if required else "Dataset (default: the run's)."
    return click.option("--data", required=required, default=None, type=EXISTING_DIR, help=help)


def out_option(help: str, **settings) -> Decorator:
    return click.option(
        "--out", required="default" not in settings, type=NEW_PATH, help=help, **settings
    )


DEVICE = click.option(
    "--device", default="auto", callback=_device, help="auto, cpu, cuda or cuda:N."
)
SEED = click.option("--seed", default=0, type=int, help="Random seed.")
STRICT = click.option(
    "--strict", is_flag=True, help="Refuse (write nothing) if any audio file is bad."
)
JOBS = click.option("-j", "--num-jobs", default=1, type=int, help="Parallel processes.")
SNR = click.option(
    "--snr",
    default=None,
    callback=_snr_range,
    help="SNR range in dB as MIN,MAX (default: the recipe's).",
)
TEACHER = click.option(
    "--teacher", required=True, type=EXISTING_DIR, help="Fine-tuned teacher folder."
)
CACHE_ROOT = click.option(
    "--cache", "cache_root", default="cache", type=NEW_PATH, help="Cache root."
)
RUN = click.option("--run", required=True, type=EXISTING_DIR, help="Student run folder.")
SPLIT = click.option("--split", default="test", type=choice(SPLITS))
RESOLUTION = click.option(
    "--resolution", default=100, type=int, help="Teacher time bins per stored vector."
)


def teacher_attention_option(many: bool) -> Decorator:
    """Which teacher vector the student learns from; ``run`` sweeps a comma-separated list."""
    help = (
        f"Teacher attention to distil: {SOURCE_FORMS}, or 'auto' (the stored source with the"
        " highest in-event mass on the training split)"
    )
    return click.option(
        "--teacher-attention",
        default=STUDENT["teacher_attention"],
        help=help + ("; comma-separated to compare several." if many else "."),
    )


# The student options train-student and run share (run sweeps lambda with --kd-weights).
STUDENT_TRAINING = compose(
    click.option(
        "--logit-weight",
        default=STUDENT["logit_weight"],
        type=float,
        help="CMKD lambda_l: weight of the task loss.",
    ),
    click.option(
        "--temperature",
        default=STUDENT["temperature"],
        type=float,
        help="Temperature on the teacher logits.",
    ),
    click.option("--epochs", default=STUDENT["epochs"], type=int),
    click.option("--batch-size", default=STUDENT["batch_size"], type=int),
    click.option("--lr", default=STUDENT["lr"], type=float),
    click.option(
        "--attention-dim",
        default=STUDENT["attention_dim"],
        type=POSITIVE,
        help="Projection width of the training-only attention head that students without"
        " attention of their own are distilled through.",
    ),
    click.option(
        "--weight-decay",
        default=STUDENT["weight_decay"],
        type=float,
        help="AdamW's decoupled weight decay.",
    ),
    click.option(
        "--width",
        default=1.0,
        type=click.FloatRange(min=0, min_open=True),
        help="Channel width multiplier of the TC-ResNets (1.5: TC-ResNet8-1.5).",
    ),
    click.option("--features", default=STUDENT["features"].kind, type=choice(FEATURE_KINDS)),
    click.option("--workers", default=STUDENT["workers"], type=int, help="DataLoader workers."),
    click.option(
        "--views",
        default=STUDENT["views"],
        type=int,
        help="Cached teacher views replayed: each epoch a train clip plays one of views 0..K-1.",
    ),
    click.option(
        "--view-features",
        default=STUDENT["view_features"],
        type=choice(VIEW_FEATURES),
        help="Views' features: replayed once and stored beside the dataset's, or replayed"
        " as items load.",
    ),
    click.option(
        "--spec-augment",
        is_flag=True,
        help="Mask bands and frames of the student's training features (SpecAugment).",
    ),
    click.option(
        "--target-memory",
        "target_memory_mb",
        default=STUDENT["target_memory_mb"],
        type=float,
        help="MB of teacher targets kept in memory; a larger cache is read from its shards.",
    ),
    DEVICE,
)


def student_options(**values) -> StudentTrainingOptions:
    """The stage's options from the parsed CLI values (the rest keep their defaults)."""
    from pipeline.student.features import FeatureConfig

    width = values.pop("width")
    widened = {"student_options": {"width_multiplier": width}} if width != 1.0 else {}
    return StudentTrainingOptions(
        features=FeatureConfig(kind=values.pop("features")), **widened, **values
    )
