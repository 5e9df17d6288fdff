"""tkd command line: parses options and calls the stage functions in ``stages/``.

Everything here can be done from Python by calling the same functions.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from pipeline.errors import TkdError

CONTEXT = {"show_default": True, "help_option_names": ["-h", "--help"]}


def _device(_ctx, _param, value: str) -> str:
    """Refuse an unusable device before anything is written."""
    from pipeline.training import resolve_device

    try:
        resolve_device(value)
    except TkdError as error:
        raise click.BadParameter(str(error)) from None
    return value


def _float_list(_ctx, param, value: str | None) -> list[float] | None:
    if value is None:
        return None
    try:
        return [float(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers") from None


def _int_list(_ctx, param, value: str) -> tuple[int, ...] | None:
    if value == "all":
        return None
    try:
        numbers = tuple(int(x) for x in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not 'all' or comma-separated integers") from None
    if min(numbers) < 0:
        raise click.BadParameter(f"{value!r}: numbers must not be negative")
    return numbers


DEVICE = click.option(
    "--device", default="auto", callback=_device, help="auto, cpu, cuda or cuda:N."
)
POSITIVE = click.IntRange(min=1)
SEED = click.option("--seed", default=0, type=int, help="Random seed.")
EXISTING_DIR = click.Path(exists=True, file_okay=False, path_type=Path)


class TkdGroup(click.Group):
    """Reports tkd's own errors (bad input) as one line instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except TkdError as error:
            raise click.ClickException(str(error)) from None


def _print_json(data: dict) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group(cls=TkdGroup, context_settings=CONTEXT)
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """tkd: temporal knowledge distillation for on-device audio classification."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )


# -- data ---------------------------------------------------------------------------
@main.group(context_settings=CONTEXT)
def data() -> None:
    """Prepare a dataset folder (manifest.jsonl + labels.json)."""


def _prepared(manifest) -> None:
    _print_json(manifest.summary())
    click.echo(manifest.root)


OUT = click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="Dataset folder to write."
)
STRICT = click.option(
    "--strict", is_flag=True, help="Refuse (write nothing) if any audio file is bad."
)
JOBS = click.option("-j", "--num-jobs", default=1, type=int, help="Parallel processes.")


def _snr_range(ctx, param, value: str | None) -> dict:
    """``--snr MIN,MAX`` as the recipes' keyword (empty: the recipe's default)."""
    numbers = _float_list(ctx, param, value)
    if numbers is None:
        return {}
    if len(numbers) != 2 or numbers[0] > numbers[1]:
        raise click.BadParameter(f"{value!r}: give MIN,MAX in dB with MIN <= MAX")
    return {"snr_db": tuple(numbers)}


SNR = click.option(
    "--snr",
    default=None,
    callback=_snr_range,
    help="SNR range in dB as MIN,MAX (default: the recipe's).",
)


@data.command("synth", context_settings=CONTEXT)
@OUT
@click.option("--classes", default=6, type=click.IntRange(2, 8), help="Number of event classes.")
@click.option("--length", default=2.0, type=click.FloatRange(min=0, min_open=True), help="Seconds.")
@click.option(
    "--per-class",
    default="60,15,15",
    callback=_int_list,
    help="Clips per class in train,valid,test.",
)
@SNR
@SEED
def data_synth(
    out: Path, classes: int, length: float, per_class: str, snr: str | None, seed: int
) -> None:
    """Embedded default: synthetic sound events in coloured noise (deterministic)."""
    from pipeline.data.recipes.synth import SynthConfig
    from stages.prepare_data import prepare_dataset

    config = SynthConfig(num_classes=classes, length=length, seed=seed, **snr)
    if per_class is None or len(per_class) != 3 or min(per_class[:2]) < 1:
        raise click.BadParameter("give TRAIN,VALID,TEST counts (train and valid at least 1)")
    _prepared(prepare_dataset("synth", out=out, config=config, clips_per_class=per_class))


@data.command("noisy-digits", context_settings=CONTEXT)
@click.option(
    "--fsdd", required=True, type=EXISTING_DIR, help="Free Spoken Digit recordings folder."
)
@click.option("--noise", required=True, type=EXISTING_DIR, help="Background noise folder.")
@click.option("--length", required=True, type=float, help="Clip length L in seconds.")
@OUT
@SNR
@click.option("--multi-label", is_flag=True, help="1 to --max-events digits per clip.")
@click.option("--max-events", default=3, type=POSITIVE)
@click.option("--speakers", default=None, help="Comma-separated FSDD speakers (default: all).")
@STRICT
@JOBS
@SEED
def data_noisy_digits(
    fsdd, noise, length, out, snr, multi_label, max_events, speakers, strict, num_jobs, seed
):
    """Spoken digits at random offsets in real background noise (Noisy Speech Commands style)."""
    from stages.prepare_data import prepare_dataset

    _prepared(
        prepare_dataset(
            "noisy-digits",
            fsdd=fsdd,
            noise=noise,
            out=out,
            length=length,
            seed=seed,
            multi_label=multi_label,
            max_events=max_events,
            strict=strict,
            num_jobs=num_jobs,
            speakers=speakers.split(",") if speakers else None,
            **snr,
        )
    )


@data.command("speech-commands", context_settings=CONTEXT)
@click.option("--root", required=True, type=EXISTING_DIR, help="Speech Commands v0.02 folder.")
@OUT
@click.option(
    "--noise", default=None, type=EXISTING_DIR, help="Noise folder for the noisy variant."
)
@click.option("--length", default=None, type=float, help="Clip length for the noisy variant.")
@SNR
@STRICT
@JOBS
@SEED
def data_speech_commands(root, out, noise, length, snr, strict, num_jobs, seed):
    """Speech Commands (optionally its noisy, longer variant)."""
    from stages.prepare_data import prepare_dataset

    if (noise is None) != (length is None):
        raise click.UsageError("the noisy variant needs both --noise and --length")

    _prepared(
        prepare_dataset(
            "speech-commands",
            root=root,
            out=out,
            noise=noise,
            length=length,
            seed=seed,
            strict=strict,
            num_jobs=num_jobs,
            **snr,
        )
    )


@data.command("fsd50k", context_settings=CONTEXT)
@click.option("--root", required=True, type=EXISTING_DIR, help="FSD50K folder.")
@OUT
@STRICT
def data_fsd50k(root, out, strict):
    """FSD50K (multi-label): dev train/val and eval."""
    from stages.prepare_data import prepare_dataset

    _prepared(prepare_dataset("fsd50k", root=root, out=out, strict=strict))


@data.command("esc50", context_settings=CONTEXT)
@click.option("--root", required=True, type=EXISTING_DIR, help="ESC-50 folder (meta/esc50.csv).")
@OUT
@click.option("--test-fold", default=5, type=click.IntRange(1, 5))
@click.option("--valid-fold", default=4, type=click.IntRange(1, 5))
@STRICT
def data_esc50(root, out, test_fold, valid_fold, strict):
    """ESC-50, folds as splits."""
    from stages.prepare_data import prepare_dataset

    _prepared(
        prepare_dataset(
            "esc50", root=root, out=out, test_fold=test_fold, valid_fold=valid_fold, strict=strict
        )
    )


@data.command("folder", context_settings=CONTEXT)
@click.option("--root", required=True, type=EXISTING_DIR, help="One subfolder per class.")
@OUT
@click.option("--valid-fraction", default=0.1, type=click.FloatRange(0, 1, max_open=True))
@click.option("--test-fraction", default=0.1, type=click.FloatRange(0, 1, max_open=True))
@STRICT
@SEED
def data_folder(root, out, valid_fraction, test_fraction, strict, seed):
    """Any folder with one subfolder of audio files per class."""
    from stages.prepare_data import prepare_dataset

    _prepared(
        prepare_dataset(
            "folder",
            root=root,
            out=out,
            valid_fraction=valid_fraction,
            test_fraction=test_fraction,
            seed=seed,
            strict=strict,
        )
    )


# -- teacher ------------------------------------------------------------------------
@main.command("finetune-teacher", context_settings=CONTEXT)
@click.option("--data", required=True, type=EXISTING_DIR, help="Prepared dataset folder.")
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="Teacher folder to write."
)
@click.option(
    "--config",
    default=None,
    help="From scratch: a preset (xlsr-300m, wav2vec2-tiny, whisper-6l, whisper-tiny) "
    "or a JSON file.",
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
@click.option("--workers", default=0, type=int, help="DataLoader workers.")
@SEED
@DEVICE
def finetune_teacher_command(
    data, out, config, init, epochs, steps, batch_size, lr, remix, patience, workers, seed, device
):
    """Fine-tune (or train from scratch) the transformer teacher."""
    from stages.finetune_teacher import TeacherTrainingOptions, finetune_teacher

    options = TeacherTrainingOptions(
        epochs=epochs,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=device,
        remix=remix,
        patience=patience or None,
        num_workers=workers,
    )
    results = finetune_teacher(data, out, config=config, init=init, options=options)
    _print_json({k: v for k, v in results.items() if k != "history"})
    click.echo(out)


@main.group(context_settings=CONTEXT)
def teacher() -> None:
    """Pretrained teachers."""


@teacher.command("import", context_settings=CONTEXT)
@click.argument("source")
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="Teacher folder to write."
)
@click.option("--seconds", default=None, type=float, help="Clip length: the Whisper window.")
@click.option("--data", default=None, type=EXISTING_DIR, help="Take the window from its clips.")
def teacher_import_command(source, out, seconds, data):
    """Turn SOURCE (a preset, CTranslate2/HF folder or OpenAI .pt) into a teacher folder."""
    from stages.import_teacher import import_teacher

    _print_json(import_teacher(source, out, seconds=seconds, data=data))


@main.command("extract-teacher", context_settings=CONTEXT)
@click.option("--data", required=True, type=EXISTING_DIR, help="Prepared dataset folder.")
@click.option("--teacher", required=True, type=EXISTING_DIR, help="Fine-tuned teacher folder.")
@click.option(
    "--cache", "cache_root", default="cache", type=click.Path(path_type=Path), help="Cache root."
)
@click.option("--resolution", default=100, type=int, help="Time bins per stored vector.")
@click.option(
    "--layers", default="all", callback=_int_list, help="'all' or comma-separated 1-based layers."
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
@DEVICE
def extract_teacher_command(
    data,
    teacher,
    cache_root,
    resolution,
    layers,
    shard_size,
    batch_size,
    workers,
    scheduler,
    store_maps,
    skip_bad,
    device,
):
    """Stage one: run the teacher once per clip and cache its temporal attention."""
    from pipeline.teacher.extraction import ExtractionSettings
    from pipeline.training import resolve_device
    from stages.extract_teacher import extract_teacher

    if workers and scheduler:
        raise click.UsageError("give --workers or --scheduler, not both")
    settings = ExtractionSettings(
        resolution=resolution,
        layers=layers,
        store_maps=store_maps,
        batch_size=batch_size,
        device=str(resolve_device(device)),
        skip_bad=skip_bad,
    )
    result = extract_teacher(data, teacher, cache_root, settings, shard_size, workers, scheduler)
    if result.summary.get("reused"):
        click.echo("cache is complete: no teacher work done", err=True)
    _print_json(result.summary)
    click.echo(result.cache_dir)


@main.group(context_settings=CONTEXT)
def cache() -> None:
    """Inspect and maintain teacher caches."""


@cache.command("list", context_settings=CONTEXT)
@click.option("--root", default="cache", type=click.Path(path_type=Path))
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


@cache.command("verify", context_settings=CONTEXT)
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


@cache.command("gc", context_settings=CONTEXT)
@click.option("--root", default="cache", type=click.Path(path_type=Path))
def cache_gc(root: Path) -> None:
    """Remove temporaries left by interrupted extractions."""
    from stages.cache_admin import collect_garbage

    removed = collect_garbage(root)
    for path in removed:
        click.echo(f"removed {path}")
    click.echo(f"{len(removed)} temporaries removed")


# -- students -----------------------------------------------------------------------
STUDENT_NAMES = ["lstm-p", "tc-resnet8", "tc-resnet14", "crnn", "att-rnn", "mhatt-rnn"]
KD_NAMES = ["none", "attention", "logits", "both"]


def student_training_options(function):
    """The options train-student and run share."""
    options = [
        click.option("--kd-weight", default=0.25, type=float, help="lambda of the attention KL."),
        click.option(
            "--logit-weight", default=0.5, type=float, help="CMKD lambda: weight of the task loss."
        ),
        click.option(
            "--temperature", default=1.0, type=float, help="Temperature on the teacher logits."
        ),
        click.option(
            "--teacher-attention", default="rollout", help="rollout, rollout:K or layer:K."
        ),
        click.option("--epochs", default=30, type=int),
        click.option("--batch-size", default=64, type=int),
        click.option("--lr", default=1e-3, type=float),
        click.option("--features", default="logmel", type=click.Choice(["logmel", "mfcc"])),
        click.option("--workers", default=0, type=int, help="DataLoader workers."),
        DEVICE,
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _training_options(student: str, kd: str, seed: int, **values):
    from pipeline.student.features import FeatureConfig
    from stages.train_student import StudentTrainingOptions

    kind = values.pop("features")
    return StudentTrainingOptions(
        student=student, kd=kd, seed=seed, features=FeatureConfig(kind=kind), **values
    )


@main.command("train-student", context_settings=CONTEXT)
@click.option("--data", required=True, type=EXISTING_DIR, help="Prepared dataset folder.")
@click.option("--student", required=True, type=click.Choice(STUDENT_NAMES))
@click.option(
    "--cache", default=None, type=EXISTING_DIR, help="Teacher cache folder (needed for any KD)."
)
@click.option("--kd", default="none", type=click.Choice(KD_NAMES))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Run folder.")
@SEED
@student_training_options
def train_student_command(data, student, cache, kd, out, seed, **values):
    """Stage two: train one student from the cache (the teacher is never loaded)."""
    from stages.train_student import train_student

    results = train_student(data, out, cache, _training_options(student, kd, seed, **values))
    _print_json({k: v for k, v in results.items() if k != "history"})
    click.echo(out)


@main.command("evaluate", context_settings=CONTEXT)
@click.option("--run", required=True, type=EXISTING_DIR, help="Student run folder.")
@click.option("--data", default=None, type=EXISTING_DIR, help="Dataset (default: the run's).")
@click.option("--split", default="test", type=click.Choice(["train", "valid", "test"]))
@DEVICE
def evaluate_command(run, data, split, device):
    """Re-measure a run's best checkpoint (metric and in-event attention mass)."""
    from stages.evaluate import evaluate_run

    _print_json(evaluate_run(run, data, split, device))


@main.command("plot-attention", context_settings=CONTEXT)
@click.option("--run", required=True, type=EXISTING_DIR)
@click.option("--cache", required=True, type=EXISTING_DIR)
@click.option("--clip", "clip_id", required=True, help="Clip id.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="PNG file.")
@click.option("--data", default=None, type=EXISTING_DIR, help="Dataset (default: the run's).")
def plot_attention_command(run, cache, clip_id, out, data):
    """Draw a clip's spectrogram with the teacher's and the student's attention."""
    from stages.evaluate import plot_attention

    click.echo(plot_attention(run, cache, clip_id, out, data))


# -- chains -------------------------------------------------------------------------
def _names(text: str, choices: list[str]) -> list[str]:
    names = choices if text == "all" else [x.strip() for x in text.split(",") if x.strip()]
    unknown = [n for n in names if n not in choices]
    if unknown:
        raise click.BadParameter(f"unknown {unknown}; choose from {', '.join(choices)} or 'all'")
    return names


@main.command("run", context_settings=CONTEXT)
@click.option("--data", required=True, type=EXISTING_DIR, help="Prepared dataset folder.")
@click.option("--teacher", required=True, type=EXISTING_DIR, help="Fine-tuned teacher folder.")
@click.option("--students", default="all", help="Comma-separated students, or 'all'.")
@click.option("--kd", "kd_modes", default="none,attention", help="Comma-separated KD modes.")
@click.option(
    "--kd-weights",
    default="0.1,0.25,0.5",
    callback=_float_list,
    help="lambdas to sweep (chosen per student on valid).",
)
@click.option("--seeds", default=3, type=POSITIVE, help="Seeds per setting.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Runs folder.")
@click.option(
    "--cache", "cache_root", default="cache", type=click.Path(path_type=Path), help="Cache root."
)
@click.option("--resolution", default=100, type=int, help="Teacher time bins.")
@click.option("--jobs", default=1, type=POSITIVE, help="Student runs in parallel (processes).")
@click.option(
    "--scheduler", default=None, help="dask.distributed scheduler for extraction and runs."
)
@student_training_options
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
    **values,
):
    """Chain extract-teacher and a sweep of train-student runs; write the results table."""
    from pipeline.teacher.extraction import ExtractionSettings
    from pipeline.training import resolve_device
    from stages.run import run_sweep

    modes = _names(kd_modes, KD_NAMES)
    sources = values.pop("teacher_attention").split(",")
    template = _training_options(
        STUDENT_NAMES[0], "none", 0, teacher_attention=sources[0], **values
    )
    extraction = ExtractionSettings(
        resolution=resolution, device=str(resolve_device(values["device"]))
    )
    summary = run_sweep(
        data,
        teacher,
        out,
        _names(students, STUDENT_NAMES),
        modes,
        kd_weights,
        seeds,
        template,
        cache_root,
        extraction,
        jobs,
        scheduler,
        teacher_attention=sources,
    )
    if summary["cache_reused"]:
        click.echo(f"reused the teacher cache {summary['cache']}", err=True)
    click.echo((Path(out) / "results.md").read_text())
    click.echo(Path(out) / "results.json")


@main.command("demo", context_settings=CONTEXT)
@click.option(
    "--out", default="demo", type=click.Path(path_type=Path), help="Folder for everything."
)
@click.option("--data", default=None, type=EXISTING_DIR, help="Use this prepared dataset instead.")
@click.option("--seeds", default=1, type=POSITIVE)
@DEVICE
def demo_command(out, data, seeds, device):
    """End to end on the embedded synthetic data (a few minutes on a 2-core CPU)."""
    from stages.demo import DemoSettings, run_demo

    result = run_demo(out, data, DemoSettings(seeds=seeds, device=device))
    click.echo(result["table"])
    _print_json({k: v for k, v in result.items() if k != "table"})


# -- deployment ---------------------------------------------------------------------
@main.command("export", context_settings=CONTEXT)
@click.option("--run", required=True, type=click.Path(path_type=Path), help="Student run folder.")
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice(["torchscript", "onnx"]),
    help="Graph format.",
)
@click.option(
    "--out",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Model file (default: RUN/export/student[-int8].pt|.onnx); settings JSON beside it.",
)
@click.option(
    "--quantize",
    default=None,
    type=click.Choice(["dynamic"]),
    help="Dynamic int8 weights (dense and recurrent layers); accuracy measured on --data.",
)
@click.option(
    "--data", default=None, type=EXISTING_DIR, help="Dataset to measure on (default: the run's)."
)
@click.option("--split", default="test", type=click.Choice(["train", "valid", "test"]))
def export_command(run, fmt, out, quantize, data, split):
    """Ship the student alone (no auxiliary head): front end + student as one graph."""
    from stages.export import export_run

    result = export_run(run, fmt, out, quantize, data, split)
    shown = ("format", "quantize", "student", "bytes", "parity", "int8_parity", "accuracy")
    _print_json({k: result[k] for k in shown if k in result})
    click.echo(result["path"])


@main.command("profile", context_settings=CONTEXT)
@click.option("--run", required=True, type=click.Path(path_type=Path), help="Student run folder.")
@click.option("--repeats", default=50, type=int, help="Timed runs per model, after the warm-up.")
@click.option("--warmup", default=10, type=int, help="Untimed runs first.")
@click.option("--int8/--no-int8", default=True, help="Also profile dynamic int8 exports.")
def profile_command(run, repeats, warmup, int8):
    """Params, MACs, file size and one-thread CPU latency of the model and its exports."""
    from stages.export import profile_run, profile_table

    result = profile_run(run, repeats=repeats, warmup=warmup, quantized=int8)
    click.echo(profile_table(result))
    click.echo(Path(run) / "profile.json")


if __name__ == "__main__":
    main()
