import hashlib

import numpy as np
import pytest

from pipeline.data.audio import load_audio
from pipeline.data.manifest import Manifest
from pipeline.data.recipes.synth import PATTERNS, SynthConfig, prepare_synth, remix_synth

CONFIG = SynthConfig(num_classes=3, length=1.0, seed=7)


def _digest(folder) -> str:
    files = sorted(folder.rglob("*.wav")) + [folder / "manifest.jsonl", folder / "labels.json"]
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()


def test_same_seed_same_bytes_other_seed_other_audio(tmp_path):
    prepare_synth(tmp_path / "a", CONFIG, clips_per_class=(3, 1, 1))
    prepare_synth(tmp_path / "b", CONFIG, clips_per_class=(3, 1, 1))
    prepare_synth(tmp_path / "c", SynthConfig(num_classes=3, length=1.0, seed=8), (3, 1, 1))
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_manifest_labels_splits_and_events(tmp_path):
    loud = SynthConfig(num_classes=3, length=1.0, snr_db=(6.0, 10.0), seed=7)
    manifest = prepare_synth(tmp_path, loud, clips_per_class=(4, 2, 1))
    louder = 0
    reloaded = Manifest.load(tmp_path)
    assert reloaded.labels.names == PATTERNS[:3] and not reloaded.labels.multi_label
    assert [len(reloaded.split(s)) for s in ("train", "valid", "test")] == [12, 6, 3]
    for clip in manifest:
        wave = load_audio(manifest.audio_path(clip)).numpy()
        assert len(wave) == 16000
        ((onset, offset),) = clip.events
        assert 0 <= onset < offset <= 1.0 and 0.2 <= offset - onset <= 0.4
        inside = wave[int(onset * 16000) : int(offset * 16000)]
        outside = np.concatenate([wave[: int(onset * 16000)], wave[int(offset * 16000) :]])
        louder += np.mean(inside**2) > np.mean(outside**2)
    assert louder >= 0.9 * len(manifest)  # brown noise wanders, so not every single clip


def test_remix_draws_a_new_clip_of_the_same_class(tmp_path):
    manifest = prepare_synth(tmp_path, CONFIG, clips_per_class=(1, 1, 0))
    clip = manifest.clips[0]
    original = load_audio(manifest.audio_path(clip))
    wave, spans = remix_synth(clip, np.random.default_rng(1), 16000)
    assert wave.shape == original.shape and len(spans) == 1
    assert not np.allclose(wave.numpy(), original.numpy(), atol=1e-3)


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="num_classes"):
        SynthConfig(num_classes=1)
    with pytest.raises(ValueError, match="longest event"):
        SynthConfig(length=0.3)
