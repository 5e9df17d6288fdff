"""Presets located through installed packages; fake packages stand in for the real ones,
which are only used (and checked against CTranslate2 itself) where the extras are installed."""

import dataclasses
import hashlib
import importlib.util

import numpy as np
import pytest
import torch

from pipeline.data.manifest import LabelSet
from pipeline.errors import TkdError
from pipeline.teacher import pretrained
from pipeline.teacher.importing import load_source
from tests.conftest import SHARED_DATA


@pytest.fixture
def fake_base(tmp_path, monkeypatch):
    """Two installed packages carrying the two halves of a model file."""
    site = tmp_path / "site"
    halves = [b"first half|", b"second half"]
    for number, half in enumerate(halves, 1):
        package = site / f"tkd_fake_part{number}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("raise RuntimeError('package code ran')\n")
        (package / "data" / f"model.bin.part{number}").write_bytes(half)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("TKD_HOME", str(tmp_path / "home"))
    preset = pretrained.Pretrained(
        extra="pretrained-base",
        parts=(
            ("tkd_fake_part1", "data/model.bin.part1"),
            ("tkd_fake_part2", "data/model.bin.part2"),
        ),
        sha256=hashlib.sha256(b"".join(halves)).hexdigest(),
    )
    monkeypatch.setitem(pretrained.PRETRAINED, "whisper-base", preset)
    return site, b"".join(halves)


def test_split_weights_are_joined_once_into_tkds_folder(fake_base, tmp_path):
    site, joined = fake_base
    path, digest = pretrained.locate("whisper-base")
    assert path == tmp_path / "home" / "pretrained" / "whisper-base" / "model.bin"
    assert path.read_bytes() == joined and digest == pretrained.PRETRAINED["whisper-base"].sha256
    assert not list(site.rglob("model.bin"))  # nothing written into site-packages
    assert pretrained.locate("whisper-base")[0] == path


def test_different_weights_are_refused(fake_base, monkeypatch):
    preset = dataclasses.replace(pretrained.PRETRAINED["whisper-base"], sha256="0" * 64)
    monkeypatch.setitem(pretrained.PRETRAINED, "whisper-base", preset)
    with pytest.raises(TkdError, match=r"is not the whisper-base weights .*\.\[pretrained-base\]"):
        pretrained.locate("whisper-base")


def test_a_missing_package_says_which_extra_to_install(monkeypatch):
    preset = dataclasses.replace(
        pretrained.PRETRAINED["whisper-tiny.en"], parts=(("tkd_not_installed", "model.bin"),)
    )
    monkeypatch.setitem(pretrained.PRETRAINED, "whisper-tiny.en", preset)
    with pytest.raises(TkdError, match=r"pip install -e '\.\[pretrained\]'"):
        pretrained.locate("whisper-tiny.en")


def _installed(name: str) -> bool:
    return all(importlib.util.find_spec(p) for p, _ in pretrained.PRETRAINED[name].parts)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["whisper-tiny.en", "whisper-base"])
@torch.no_grad()
def test_preset_matches_ctranslate2_on_a_real_clip(name):
    if not _installed(name):
        pytest.skip(f"the {pretrained.PRETRAINED[name].extra} extra is not installed")
    ctranslate2 = pytest.importorskip("ctranslate2", reason="ctranslate2 is not installed")
    clip = SHARED_DATA / "fsdd" / "recordings" / "3_theo_0.wav"
    if not clip.is_file():
        pytest.skip(f"{clip} is not there")
    import soundfile
    import torchaudio

    wave, rate = soundfile.read(clip, dtype="float32")
    wave = torchaudio.functional.resample(torch.from_numpy(wave), rate, 16000).numpy()
    model, extractor, _ = load_source(name, LabelSet(("a", "b")), 30.0)
    features = extractor(wave, sampling_rate=16000, return_tensors="np")["input_features"]
    ours = model.eval().encoder(torch.from_numpy(features)).last_hidden_state.numpy()
    reference = ctranslate2.models.Whisper(
        str(pretrained.locate(name)[0].parent), device="cpu", compute_type="float32"
    )
    theirs = np.array(reference.encode(ctranslate2.StorageView.from_array(features)))
    assert np.abs(ours - theirs).max() <= 1e-3
