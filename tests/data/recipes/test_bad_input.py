"""The bad-input policy, the same for every recipe: missing root or metadata is a
ManifestError naming it; bad audio is reported by path and the rest written; strict
mode refuses and writes nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile

from pipeline.data.manifest import Manifest
from pipeline.data.recipes.common import read_skipped
from pipeline.data.recipes.esc50 import prepare_esc50
from pipeline.data.recipes.folder import prepare_folder
from pipeline.data.recipes.fsd50k import prepare_fsd50k
from pipeline.data.recipes.noisy_digits import prepare_noisy_digits
from pipeline.data.recipes.speech_commands import prepare_speech_commands
from pipeline.errors import AudioError, ManifestError
from tests.data.recipes.fixtures import (
    make_esc50,
    make_folder,
    make_fsd50k,
    make_fsdd,
    make_noise,
    make_speech_commands,
    write_bad_files,
    write_csv,
)


@dataclass(frozen=True)
class Case:
    make: Callable[[Path], Path]
    prepare: Callable[..., Manifest]
    metadata: str | None  # a metadata file the recipe cannot do without
    add_bad: Callable[[Path], list[str]]  # puts junk where the recipe reads; returns its ids


def _bad_in(folder: str, id_prefix: str) -> Callable[[Path], list[str]]:
    def add(root: Path) -> list[str]:
        write_bad_files(root / folder)
        return [f"{id_prefix}bad_empty", f"{id_prefix}bad_text"]

    return add


def _bad_fsd50k(root: Path) -> list[str]:
    """Listed in dev.csv but empty / not audio on disk."""
    write_bad_files(root / "FSD50K.dev_audio", "9")
    (root / "FSD50K.dev_audio" / "9_empty.wav").rename(root / "FSD50K.dev_audio" / "901.wav")
    (root / "FSD50K.dev_audio" / "9_text.wav").rename(root / "FSD50K.dev_audio" / "902.wav")
    dev = root / "FSD50K.ground_truth" / "dev.csv"
    with dev.open("a") as handle:
        handle.write('901,Bark,/m/a,train\n902,"Bark,Meow","/m/a,/m/b",val\n')
    return ["dev-901", "dev-902"]


def _bad_esc50(root: Path) -> list[str]:
    write_bad_files(root / "audio", "1-999-A")
    csv_path = root / "meta" / "esc50.csv"
    with csv_path.open("a") as handle:
        handle.write(
            "1-999-A_empty.wav,1,0,dog,False,999,A\n1-999-A_text.wav,2,1,rooster,False,9,A\n"
        )
    return ["1-999-A_empty", "1-999-A_text"]


def _bad_fsdd(root: Path) -> list[str]:
    """Properly named recordings that are empty / not audio."""
    empty, text = write_bad_files(root / "recordings")
    empty.rename(root / "recordings" / "3_ann_90.wav")
    text.rename(root / "recordings" / "4_ann_91.wav")
    return ["3_ann_90", "4_ann_91"]


def _prepare_noisy(root: Path, out: Path, **options) -> Manifest:
    return prepare_noisy_digits(  # one speaker: only the recording split applies
        root, root / "noise", out, length=0.5, split_by="recording", **options
    )


def _make_fsdd(root: Path) -> Path:
    make_noise(root / "noise")
    return make_fsdd(root, speakers=("ann",), indices=range(2))


CASES = {
    "speech_commands": Case(
        make_speech_commands, prepare_speech_commands, "testing_list.txt", _bad_in("yes", "yes_")
    ),
    "fsd50k": Case(make_fsd50k, prepare_fsd50k, "FSD50K.ground_truth/dev.csv", _bad_fsd50k),
    "esc50": Case(make_esc50, prepare_esc50, "meta/esc50.csv", _bad_esc50),
    "folder": Case(make_folder, prepare_folder, None, _bad_in("cat", "cat__")),
    "noisy_digits": Case(_make_fsdd, _prepare_noisy, None, _bad_fsdd),
}


@pytest.mark.parametrize("name", CASES)
def test_missing_root_names_it(tmp_path, name):
    missing = tmp_path / "nowhere"
    with pytest.raises(ManifestError) as caught:
        CASES[name].prepare(missing, tmp_path / "out")
    assert caught.value.path == missing and str(missing) in str(caught.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", [name for name, case in CASES.items() if case.metadata])
def test_missing_metadata_names_it(tmp_path, name):
    case = CASES[name]
    root = case.make(tmp_path / "data")
    (root / case.metadata).unlink()
    with pytest.raises(ManifestError) as caught:
        case.prepare(root, tmp_path / "out")
    assert caught.value.path == root / case.metadata
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", CASES)
def test_bad_audio_is_reported_and_the_rest_written(tmp_path, name, caplog):
    case = CASES[name]
    root = case.make(tmp_path / "data")
    good = len(case.prepare(root, tmp_path / "clean"))
    bad_ids = case.add_bad(root)
    with caplog.at_level(logging.WARNING):
        manifest = case.prepare(root, tmp_path / "out")
    assert len(Manifest.load(tmp_path / "out")) == len(manifest) == good
    skipped = read_skipped(tmp_path / "out")
    assert sorted(bad.id for bad in skipped) == sorted(bad_ids)
    assert all(Path(bad.path).is_file() and bad.path.startswith(str(root)) for bad in skipped)
    problems = " ".join(bad.problem for bad in skipped)
    assert "empty" in problems and "cannot be decoded" in problems
    assert "skipped 2 unusable audio file(s)" in caplog.text
    assert not read_skipped(tmp_path / "clean")


@pytest.mark.parametrize("name", CASES)
def test_strict_refuses_and_writes_nothing(tmp_path, name):
    case = CASES[name]
    root = case.make(tmp_path / "data")
    case.add_bad(root)
    with pytest.raises(AudioError) as caught:
        case.prepare(root, tmp_path / "out", strict=True)
    assert caught.value.path.is_file() and "2 unusable file(s)" in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_rerun_after_fixing_removes_stale_skipped_list(tmp_path):
    root = make_folder(tmp_path / "data")
    empty, text = write_bad_files(root / "dog")
    prepare_folder(root, tmp_path / "out")
    assert len(read_skipped(tmp_path / "out")) == 2
    empty.unlink()
    text.unlink()
    prepare_folder(root, tmp_path / "out")
    assert not (tmp_path / "out" / "skipped.json").exists()


def test_noisy_digits_reports_misnamed_recordings(tmp_path):
    root = _make_fsdd(tmp_path / "fsdd")
    (root / "recordings" / "hello.wav").write_bytes(
        (root / "recordings" / "0_ann_0.wav").read_bytes()
    )
    _prepare_noisy(root, tmp_path / "out")
    (skipped,) = read_skipped(tmp_path / "out")
    assert skipped.id == "hello" and "name is not" in skipped.problem


def test_noisy_digits_needs_usable_noise(tmp_path):
    root = _make_fsdd(tmp_path / "fsdd")
    write_bad_files(tmp_path / "junk_noise")
    with pytest.raises(ManifestError) as caught:
        prepare_noisy_digits(
            root, tmp_path / "junk_noise", tmp_path / "out", length=0.5, split_by="recording"
        )
    assert caught.value.path == tmp_path / "junk_noise"
    with pytest.raises(ManifestError) as caught:
        prepare_noisy_digits(
            root, tmp_path / "no_noise", tmp_path / "out", length=0.5, split_by="recording"
        )
    assert caught.value.path == tmp_path / "no_noise"


def test_fsd50k_rejects_unknown_split(tmp_path):
    root = make_fsd50k(tmp_path / "fsd")
    dev = root / "FSD50K.ground_truth" / "dev.csv"
    write_csv(dev, ["fname", "labels", "mids", "split"], [[101, "Bark", "/m/a", "holdout"]])
    with pytest.raises(ManifestError, match="line 2: split 'holdout'") as caught:
        prepare_fsd50k(root, tmp_path / "out")
    assert caught.value.path == dev


def test_noisy_digits_late_decode_failure_is_reported_or_refused(tmp_path):
    """A header that probes fine over NaN samples only fails while mixing."""
    root = _make_fsdd(tmp_path / "fsdd")
    nan = np.full(800, np.nan, dtype=np.float32)
    soundfile.write(root / "recordings" / "5_ann_95.wav", nan, 8000, subtype="FLOAT")
    prepare_noisy_digits(root, root / "noise", tmp_path / "out", length=0.5, split_by="recording")
    (skipped,) = read_skipped(tmp_path / "out")
    assert skipped.id == "5_ann_95" and "NaN" in skipped.problem
    with pytest.raises(AudioError, match="NaN"):
        prepare_noisy_digits(
            root, root / "noise", tmp_path / "strict", length=0.5, strict=True, split_by="recording"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fsdd", "out"]  # no staging left
