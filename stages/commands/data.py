"""``tkd data ...``: one command per recipe, each writing a prepared dataset folder."""

from __future__ import annotations

from pathlib import Path

import click

from stages.commands.base import main, print_json
from stages.commands.options import (
    EXISTING_DIR,
    JOBS,
    POSITIVE,
    SEED,
    SNR,
    STRICT,
    int_list,
    out_option,
)

OUT = out_option("Dataset folder to write.")


def _root(help: str) -> click.Option:
    return click.option("--root", required=True, type=EXISTING_DIR, help=help)


def _prepare(recipe: str, **arguments) -> None:
    from stages.prepare_data import prepare_dataset

    manifest = prepare_dataset(recipe, **arguments)
    print_json(manifest.summary())
    click.echo(manifest.root)


@main.group()
def data() -> None:
    """Prepare a dataset folder (manifest.jsonl + labels.json)."""


@data.command("synth")
@OUT
@click.option("--classes", default=6, type=click.IntRange(2, 8), help="Number of event classes.")
@click.option("--length", default=2.0, type=click.FloatRange(min=0, min_open=True), help="Seconds.")
@click.option(
    "--per-class",
    default="60,15,15",
    callback=int_list,
    help="Clips per class in train,valid,test.",
)
@SNR
@SEED
def data_synth(out: Path, classes: int, length: float, per_class, snr: dict, seed: int) -> None:
    """Embedded default: synthetic sound events in coloured noise (deterministic)."""
    from pipeline.data.recipes.synth import SynthConfig

    if per_class is None or len(per_class) != 3 or min(per_class[:2]) < 1:
        raise click.BadParameter("give TRAIN,VALID,TEST counts (train and valid at least 1)")
    config = SynthConfig(num_classes=classes, length=length, seed=seed, **snr)
    _prepare("synth", out=out, config=config, clips_per_class=per_class)


@data.command("noisy-digits")
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
@click.option("--split-by", default="speaker", type=click.Choice(["speaker", "recording"]))
@click.option("--test-speakers", default=None, help="Comma-separated test speakers.")
@click.option("--valid-speakers", default=None, help="Comma-separated valid speakers.")
@click.option("--fold", default=None, type=click.IntRange(min=0), help="Speaker fold K.")
@click.option("--folds", default=None, type=click.IntRange(min=2), help="Speaker folds N.")
@STRICT
@JOBS
@SEED
def data_noisy_digits(snr: dict, **arguments) -> None:
    """Spoken digits at random offsets in real background noise (Noisy Speech Commands style).

    Speaker-disjoint by default (fold 0 of 5 speaker folds); --split-by recording keeps
    FSDD's recording-index split."""
    for key in ("speakers", "test_speakers", "valid_speakers"):
        arguments[key] = arguments[key].split(",") if arguments[key] else None
    try:
        _prepare("noisy-digits", **snr, **arguments)
    except ValueError as error:  # conflicting or unknown split options
        raise click.UsageError(str(error)) from None


@data.command("speech-commands")
@_root("Speech Commands v0.02 folder.")
@OUT
@click.option(
    "--noise", default=None, type=EXISTING_DIR, help="Noise folder for the noisy variant."
)
@click.option("--length", default=None, type=float, help="Clip length for the noisy variant.")
@SNR
@STRICT
@JOBS
@SEED
def data_speech_commands(noise, length, snr: dict, **arguments) -> None:
    """Speech Commands (optionally its noisy, longer variant)."""
    if (noise is None) != (length is None):
        raise click.UsageError("the noisy variant needs both --noise and --length")
    _prepare("speech-commands", noise=noise, length=length, **snr, **arguments)


@data.command("fsd50k")
@_root("FSD50K folder.")
@OUT
@STRICT
def data_fsd50k(**arguments) -> None:
    """FSD50K (multi-label): dev train/val and eval."""
    _prepare("fsd50k", **arguments)


@data.command("esc50")
@_root("ESC-50 folder (meta/esc50.csv).")
@OUT
@click.option("--test-fold", default=5, type=click.IntRange(1, 5))
@click.option("--valid-fold", default=4, type=click.IntRange(1, 5))
@STRICT
def data_esc50(**arguments) -> None:
    """ESC-50, folds as splits."""
    _prepare("esc50", **arguments)


@data.command("folder")
@_root("One subfolder per class.")
@OUT
@click.option("--valid-fraction", default=0.1, type=click.FloatRange(0, 1, max_open=True))
@click.option("--test-fraction", default=0.1, type=click.FloatRange(0, 1, max_open=True))
@STRICT
@SEED
def data_folder(**arguments) -> None:
    """Any folder with one subfolder of audio files per class."""
    _prepare("folder", **arguments)
