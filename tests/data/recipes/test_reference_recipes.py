"""Recipes that reference the user's files in place: labels, splits, ids, round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.data.manifest import Manifest
from pipeline.data.recipes.esc50 import prepare_esc50
from pipeline.data.recipes.folder import prepare_folder
from pipeline.data.recipes.fsd50k import prepare_fsd50k
from pipeline.data.recipes.speech_commands import prepare_speech_commands
from tests.data.recipes.fixtures import (
    VOCABULARY,
    make_esc50,
    make_folder,
    make_fsd50k,
    make_speech_commands,
    write_tone,
)


def reloaded(manifest: Manifest) -> Manifest:
    """The manifest as written, checked equal to what the recipe returned."""
    again = Manifest.load(manifest.root)
    assert again.clips == manifest.clips and again.labels == manifest.labels
    for clip in again:
        assert Path(clip.audio).is_absolute() and Path(clip.audio).is_file()
        assert clip.duration == pytest.approx(0.25)
    return again


def test_speech_commands_words_splits_and_ids(tmp_path):
    root = make_speech_commands(tmp_path / "sc")
    manifest = reloaded(prepare_speech_commands(root, tmp_path / "out"))
    assert manifest.labels.names == ("no", "up", "yes")  # _background_noise_ is not a class
    assert not manifest.labels.multi_label
    assert len(manifest) == 15
    assert manifest["yes_x0_nohash_0"].split == "valid"
    assert manifest["no_x1_nohash_0"].split == "test"
    assert manifest["up_x4_nohash_0"].split == "train"
    assert manifest["up_x4_nohash_0"].labels == ("up",)
    assert manifest["up_x4_nohash_0"].speaker == "x4"  # the hash before _nohash_
    assert {name: len(manifest.split(name)) for name in ("train", "valid", "test")} == {
        "train": 9,
        "valid": 3,
        "test": 3,
    }


def test_speech_commands_needs_noise_and_length_together(tmp_path):
    root = make_speech_commands(tmp_path / "sc")
    with pytest.raises(ValueError, match="both noise and length"):
        prepare_speech_commands(root, tmp_path / "out", noise=root / "_background_noise_")


def test_speech_commands_noisy_variant_materialises(tmp_path):
    root = make_speech_commands(tmp_path / "sc")
    noise = root / "_background_noise_"
    manifest = prepare_speech_commands(root, tmp_path / "out", noise=noise, length=0.5)
    again = Manifest.load(manifest.root)
    assert again.clips == manifest.clips and len(again) == 15
    for clip in again:
        assert clip.audio == f"audio/{clip.id}.wav" and (again.root / clip.audio).is_file()
        assert clip.duration == 0.5 and clip.mix["generator"] == "noisy-speech-commands"
        ((onset, offset),) = clip.events
        assert 0 <= onset < offset <= 0.5


def test_fsd50k_multi_label_splits_and_vocabulary_order(tmp_path):
    manifest = reloaded(prepare_fsd50k(make_fsd50k(tmp_path / "fsd"), tmp_path / "out"))
    assert manifest.labels.multi_label
    assert manifest.labels.names == ("Speech", "Bark", "Meow")  # vocabulary.csv order
    assert manifest["dev-101"].labels == ("Bark", "Speech")
    assert manifest["eval-201"].labels == ("Bark", "Meow")
    splits = {clip.id: clip.split for clip in manifest}
    assert splits == {
        "dev-101": "train",
        "dev-102": "train",
        "dev-103": "valid",
        "eval-201": "test",
        "eval-202": "test",
    }


def test_fsd50k_without_vocabulary_uses_sorted_union(tmp_path):
    root = make_fsd50k(tmp_path / "fsd", vocabulary=False)
    manifest = prepare_fsd50k(root, tmp_path / "out")
    assert manifest.labels.names == tuple(sorted(VOCABULARY))


def test_esc50_fold_mapping_default_and_configured(tmp_path):
    root = make_esc50(tmp_path / "esc")
    manifest = reloaded(prepare_esc50(root, tmp_path / "out"))
    assert manifest.labels.names == ("dog", "rooster")  # target order
    fold = {clip.id: int(clip.id.split("-")[0]) for clip in manifest}
    expected = {1: "train", 2: "train", 3: "train", 4: "valid", 5: "test"}
    assert all(clip.split == expected[fold[clip.id]] for clip in manifest)
    manifest = prepare_esc50(root, tmp_path / "out2", test_fold=1, valid_fold=2)
    assert {clip.id for clip in manifest.split("test")} == {"1-100-A-0", "1-101-A-1"}
    assert {clip.id.split("-")[0] for clip in manifest.split("valid")} == {"2"}


@pytest.mark.parametrize("folds", [(5, 5), (0, 4), (5, 6)])
def test_esc50_rejects_bad_fold_choice(tmp_path, folds):
    with pytest.raises(ValueError, match="folds"):
        prepare_esc50(make_esc50(tmp_path / "esc"), tmp_path / "out", *folds)


def test_folder_labels_ids_and_formats(tmp_path):
    root = make_folder(tmp_path / "data")
    write_tone(root / "cat" / "nested" / "purr.flac")
    write_tone(root / "dog" / "howl.ogg")
    (root / "dog" / "notes.txt").write_text("not audio, not listed")
    manifest = reloaded(prepare_folder(root, tmp_path / "out"))
    assert manifest.labels.names == ("cat", "dog")
    assert len(manifest) == 10
    assert manifest["cat__nested__purr"].labels == ("cat",)
    assert manifest["dog__howl"].labels == ("dog",)


def test_folder_split_is_stable_and_order_free(tmp_path):
    root = make_folder(tmp_path / "data", per_class=100)
    first = prepare_folder(root, tmp_path / "a", valid_fraction=0.2, test_fraction=0.2)
    counts = {name: len(first.split(name)) for name in ("train", "valid", "test")}
    assert 20 <= counts["valid"] <= 60 and 20 <= counts["test"] <= 60
    write_tone(root / "cat" / "extra.wav")  # adding a file moves no other file
    (root / "dog" / "dog0.wav").unlink()
    second = prepare_folder(root, tmp_path / "b", valid_fraction=0.2, test_fraction=0.2)
    assert all(second[c.id].split == c.split for c in first if c.id in second)
    reseeded = prepare_folder(root, tmp_path / "c", valid_fraction=0.2, test_fraction=0.2, seed=1)
    assert any(reseeded[c.id].split != c.split for c in first if c.id in reseeded)
