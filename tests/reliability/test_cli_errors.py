"""Every command, run with bad flags or missing paths, exits non-zero with one `Error:`
line (no traceback) and writes nothing: no output folder, no cache, no run."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main

DATA, TEACHER = "<data>", "<teacher>"  # replaced by the session fixtures' folders
MISSING = "does/not/exist"
EXTRACT = ["extract-teacher", "--data", DATA, "--teacher", TEACHER, "--cache", "cache"]
TRAIN = ["train-student", "--data", DATA, "--student", "tc-resnet8", "--out", "run"]
RUN = ["run", "--data", DATA, "--teacher", TEACHER, "--out", "runs", "--cache", "cache"]
# the smallest sweep: were a bad flag let through, it would finish (and write) quickly
ONE_QUICK_RUN = ["--students", "tc-resnet8", "--kd", "attention", "--seeds", "1", "--epochs", "1"]

CASES = {
    "unknown option": ["--bogus"],
    "unknown command": ["no-such-command"],
    "data synth without --out": ["data", "synth"],
    "data synth --classes x": ["data", "synth", "--out", "out", "--classes", "x"],
    "data noisy-digits, missing --fsdd": [
        *["data", "noisy-digits", "--fsdd", MISSING, "--noise", MISSING],
        *["--length", "1", "--out", "out"],
    ],
    "data speech-commands, missing root": ["data", "speech-commands", "--root", MISSING],
    "data fsd50k, missing root": ["data", "fsd50k", "--root", MISSING, "--out", "out"],
    "data esc50, missing root": ["data", "esc50", "--root", MISSING, "--out", "out"],
    "data folder, missing root": ["data", "folder", "--root", MISSING, "--out", "out"],
    "finetune-teacher, missing data": [
        *["finetune-teacher", "--data", MISSING, "--out", "out", "--config", "whisper-tiny"]
    ],
    "finetune-teacher, no --config or --init": ["finetune-teacher", "--data", DATA, "--out", "t"],
    "finetune-teacher, unknown config": [
        *["finetune-teacher", "--data", DATA, "--out", "t", "--config", "nope"]
    ],
    "extract-teacher, missing data": ["extract-teacher", "--data", MISSING, "--teacher", TEACHER],
    "extract-teacher, missing teacher": ["extract-teacher", "--data", DATA, "--teacher", MISSING],
    "extract-teacher, teacher not a checkpoint": [
        *["extract-teacher", "--data", DATA, "--teacher", ".", "--cache", "cache"]
    ],
    "extract-teacher --resolution 0": [*EXTRACT, "--resolution", "0"],
    "extract-teacher --batch-size 0": [*EXTRACT, "--batch-size", "0"],
    "extract-teacher --shard-size 0": [*EXTRACT, "--shard-size", "0"],
    "extract-teacher --workers -1": [*EXTRACT, "--workers", "-1"],
    "extract-teacher --layers 9": [*EXTRACT, "--layers", "9"],
    "extract-teacher --workers and --scheduler": [*EXTRACT, "--workers", "1", "--scheduler", "x"],
    "cache verify, missing folder": ["cache", "verify", MISSING],
    "cache list --root without a value": ["cache", "list", "--root"],
    "train-student, missing data": ["train-student", "--data", MISSING, "--student", "lstm-p"],
    "train-student, unknown student": [*TRAIN[:4], "nope", "--out", "run"],
    "train-student --kd without --cache": [*TRAIN, "--kd", "attention"],
    "train-student --cache not a cache": [*TRAIN, "--kd", "attention", "--cache", "."],
    "train-student --teacher-attention bogus": [*TRAIN, "--teacher-attention", "bogus"],
    "train-student --epochs 0": [*TRAIN, "--epochs", "0"],
    "train-student --batch-size 0": [*TRAIN, "--batch-size", "0"],
    "train-student --lr -1": [*TRAIN, "--lr", "-1"],
    "train-student --kd-weight -1": [*TRAIN, "--kd-weight", "-1"],
    "train-student --temperature 0": [*TRAIN, "--temperature", "0"],
    "train-student --logit-weight 2": [*TRAIN, "--logit-weight", "2"],
    "train-student --views 0": [*TRAIN, "--views", "0"],
    "train-student --views without --cache": [*TRAIN, "--views", "2"],
    "evaluate, missing run": ["evaluate", "--run", MISSING],
    "evaluate, not a run": ["evaluate", "--run", "."],
    "plot-attention, missing run": [
        *["plot-attention", "--run", MISSING, "--cache", ".", "--clip", "x", "--out", "a.png"]
    ],
    "run, missing data": ["run", "--data", MISSING, "--teacher", TEACHER, "--out", "runs"],
    "run --students nope": [*RUN, "--students", "nope"],
    "run --kd bogus": [*RUN, "--kd", "bogus"],
    "run --resolution 0": [*RUN, "--resolution", "0"],
    "run --epochs 0": [*RUN, "--epochs", "0"],
    # a sweep's lambdas are --kd-weights; the single --kd-weight was accepted and ignored
    "run --kd-weight": [*RUN, *ONE_QUICK_RUN, "--kd-weight", "0.5"],
    # every source is checked before the teacher runs, not only the first
    "run --teacher-attention rollout,bogus": [
        *[*RUN, *ONE_QUICK_RUN, "--teacher-attention", "rollout,bogus"]
    ],
    "export, missing run": ["export", "--run", MISSING, "--format", "torchscript"],
    "export, not a run": ["export", "--run", ".", "--format", "onnx"],
    "export --format bogus": ["export", "--run", ".", "--format", "bogus"],
    "profile, missing run": ["profile", "--run", MISSING],
    "profile, not a run": ["profile", "--run", "."],
    "demo, missing data": ["demo", "--data", MISSING],
    "demo --seeds x": ["demo", "--seeds", "x"],
}

# Well-formed flags whose values are wrong (out of range, inconsistent, unusable device):
# refused by the option's type or callback, or by the stage before it writes anything.
VALUE_CASES = {
    "data synth --classes 1": ["data", "synth", "--out", "out", "--classes", "1"],
    "data synth --per-class 1,2": ["data", "synth", "--out", "out", "--per-class", "1,2"],
    "data synth --snr 5": ["data", "synth", "--out", "out", "--snr", "5"],
    "data folder --valid-fraction 2": [
        *["data", "folder", "--root", DATA, "--out", "out", "--valid-fraction", "2"]
    ],
    "data esc50 --test-fold 9": [
        "data",
        "esc50",
        "--root",
        DATA,
        "--out",
        "out",
        "--test-fold",
        "9",
    ],
    "data speech-commands --length without --noise": [
        *["data", "speech-commands", "--root", DATA, "--out", "out", "--length", "1"]
    ],
    "extract-teacher --layers a,b": [*EXTRACT, "--layers", "a,b"],
    "extract-teacher --device bogus": [*EXTRACT, "--device", "bogus"],
    "train-student --device bogus": [*TRAIN, "--device", "bogus"],
    "finetune-teacher --batch-size 0": [
        *["finetune-teacher", "--data", DATA, "--out", "t", "--config", "whisper-tiny"],
        *["--batch-size", "0"],
    ],
    "run --kd-weights x": [*RUN, "--kd-weights", "x"],
    "run --seeds 0": [*RUN, "--seeds", "0"],
    "demo --device bogus": ["demo", "--out", "demo", "--device", "bogus"],
}


def _invoke(args, synth_data, tiny_teacher, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fixtures = {DATA: str(synth_data), TEACHER: str(tiny_teacher)}
    result = CliRunner().invoke(main, [fixtures.get(arg, arg) for arg in args])
    return result


def _assert_refused_cleanly(result, tmp_path: Path) -> None:
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # no traceback
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    assert list(tmp_path.iterdir()) == []  # nothing written where it ran


@pytest.mark.parametrize("case", CASES)
def test_bad_flags_exit_nonzero_with_one_error_line_and_write_nothing(
    case, synth_data, tiny_teacher, tmp_path, monkeypatch
):
    before = sorted(p.name for p in synth_data.iterdir())
    result = _invoke(CASES[case], synth_data, tiny_teacher, tmp_path, monkeypatch)
    _assert_refused_cleanly(result, tmp_path)
    assert sorted(p.name for p in synth_data.iterdir()) == before


@pytest.mark.parametrize("case", VALUE_CASES)
def test_bad_values_are_refused_before_anything_is_written(
    case, synth_data, tiny_teacher, tmp_path, monkeypatch
):
    result = _invoke(VALUE_CASES[case], synth_data, tiny_teacher, tmp_path, monkeypatch)
    _assert_refused_cleanly(result, tmp_path)


def test_cache_verify_of_a_folder_that_is_no_cache_says_why_and_exits_1(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["cache", "verify", "."])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.output.splitlines() == [
        "index.json: missing: not a cache, or its extraction did not finish"
    ]
    assert list(tmp_path.iterdir()) == []
