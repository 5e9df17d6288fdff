import os
from pathlib import Path

import pytest

from pipeline.data.manifest import Clip, LabelSet, Manifest
from pipeline.errors import ManifestError

LABELS = LabelSet(("yes", "no"))


def _manifest(root, clips=None, labels=LABELS):
    clips = clips or [
        Clip("a", "a.wav", ("yes",), "train", 1.0, ((0.2, 0.5),), {"generator": "x"}, "ann"),
        Clip("b", "b.wav", ("no",), "valid", 1.0, ((0.1, 0.2), (0.6, 0.7))),
    ]
    return Manifest(root, clips, labels)


def test_round_trip_keeps_every_field(tmp_path):
    manifest = _manifest(tmp_path)
    manifest.save()
    loaded = Manifest.load(tmp_path)
    assert loaded.clips == manifest.clips
    assert loaded["a"].mix == {"generator": "x"} and loaded["b"].events == ((0.1, 0.2), (0.6, 0.7))
    assert loaded["a"].speaker == "ann" and loaded["b"].speaker is None
    assert loaded.labels == manifest.labels
    assert loaded.audio_path(loaded["a"]) == tmp_path / "a.wav"


def test_duplicate_ids_and_unknown_labels_are_refused(tmp_path):
    clip = Clip("a", "a.wav", ("yes",), "train", 1.0)
    with pytest.raises(ManifestError, match="duplicate clip id 'a'"):
        _manifest(tmp_path, [clip, clip])
    with pytest.raises(ManifestError, match="unknown label"):
        _manifest(tmp_path, [Clip("a", "a.wav", ("maybe",), "train", 1.0)])
    with pytest.raises(ManifestError, match="2 labels in a single-label task"):
        _manifest(tmp_path, [Clip("a", "a.wav", ("yes", "no"), "train", 1.0)])


def test_fingerprint_follows_ids_and_audio_files(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"1234")
    (tmp_path / "b.wav").write_bytes(b"5678")
    manifest = _manifest(tmp_path)
    before = manifest.fingerprint()
    assert _manifest(tmp_path).fingerprint() == before
    (tmp_path / "a.wav").write_bytes(b"123456")
    resized = _manifest(tmp_path).fingerprint()
    assert resized != before
    stat = (tmp_path / "a.wav").stat()
    os.utime(tmp_path / "a.wav", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = _manifest(tmp_path).fingerprint()
    assert changed != resized
    renamed = [Clip("c", "a.wav", ("yes",), "train", 1.0), manifest["b"]]
    assert _manifest(tmp_path, renamed).fingerprint() != changed


def test_fingerprint_stats_the_audio_once_per_manifest(tmp_path, monkeypatch):
    (tmp_path / "a.wav").write_bytes(b"1234")
    (tmp_path / "b.wav").write_bytes(b"5678")
    manifest = _manifest(tmp_path)
    real, stats = Path.stat, []

    def counting(self, *args, **kwargs):
        stats.append(self.name)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", counting)
    first = manifest.fingerprint()
    looked = len(stats)
    assert {"a.wav", "b.wav"} <= set(stats)
    assert [manifest.fingerprint() for _ in range(3)] == [first] * 3
    assert len(stats) == looked  # no file looked at again
