"""Fuzzing the loaders: whatever bytes a manifest, a label list, an audio file or a cache
index holds, loading either succeeds with sane values or raises tkd's own error type
(a TkdError subclass naming the file), never anything else."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.cache import CacheIndex
from pipeline.data.audio import load_audio
from pipeline.data.manifest import SPLITS, Manifest
from pipeline.data.recipes.common import probe_audio
from pipeline.errors import AudioError, CacheError, ManifestError

FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,  # nothing written into the repository
    suppress_health_check=[HealthCheck.too_slow],
)

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)
EDGES = st.sampled_from([math.inf, -math.inf, math.nan, 1e308, -(2**63), 2**64, True])
CLASSES = ["dog", "cat"]
FIELDS = {
    "id": st.text(max_size=6) | JSON,
    "audio": st.just("a.wav") | JSON,
    "labels": st.lists(st.sampled_from([*CLASSES, "zebra", ""]), max_size=3) | JSON,
    "split": st.sampled_from([*SPLITS, "holdout"]) | JSON,
    "duration": st.floats(allow_nan=True, allow_infinity=True) | EDGES | JSON,
    "event": st.lists(st.floats(-1, 3), max_size=3) | JSON,
    "events": st.lists(st.lists(st.floats(-1, 3), max_size=3), max_size=2) | JSON,
    "mix": JSON,
}
VALID_LINE = {"id": "a", "audio": "a.wav", "labels": ["dog"], "split": "train", "duration": 1.0}


@st.composite
def near_valid_line(draw) -> dict:
    """A valid line with up to two fields replaced by fuzz, one perhaps dropped."""
    line = {**VALID_LINE, "id": draw(st.sampled_from("abc"))}
    for key in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=2)):
        line[key] = draw(FIELDS[key])
    if draw(st.booleans()):
        line.pop(draw(st.sampled_from(sorted(line))))
    return line


LINE = (
    (near_valid_line() | st.fixed_dictionaries({}, optional=FIELDS)).map(
        lambda line: json.dumps(line).encode()
    )
    | st.text(max_size=30).map(str.encode)
    | st.binary(max_size=30)
)
LABELS = (
    st.fixed_dictionaries(
        {"classes": st.just(CLASSES) | JSON}, optional={"multi_label": st.booleans() | JSON}
    ).map(lambda labels: json.dumps(labels).encode())
    | JSON.map(lambda value: json.dumps(value).encode())
    | st.binary(max_size=30)
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(lines=st.lists(LINE, max_size=5), labels=LABELS)
def test_manifest_load_succeeds_sanely_or_raises_manifest_error(folder, lines, labels):
    (folder / "labels.json").write_bytes(labels)
    (folder / "manifest.jsonl").write_bytes(b"\n".join(lines))
    try:
        manifest = Manifest.load(folder)
    except ManifestError as error:
        assert error.path in (folder / "labels.json", folder / "manifest.jsonl")
        return
    names = set(manifest.labels.names)
    assert all(isinstance(name, str) and name for name in names)
    assert len(set(manifest.ids)) == len(manifest) > 0
    for clip in manifest:
        assert isinstance(clip.id, str) and clip.id and clip.split in SPLITS
        assert math.isfinite(clip.duration) and clip.duration > 0
        assert clip.labels and set(clip.labels) <= names
        assert all(0 <= on < off for on, off in clip.events)


def _encoded(format: str, subtype: str, channels: int = 1) -> bytes:
    buffer = io.BytesIO()
    samples = 0.3 * np.random.default_rng(0).standard_normal((800, channels))
    soundfile.write(buffer, samples, 16_000, format=format, subtype=subtype)
    return buffer.getvalue()


VALID = [
    _encoded("WAV", "PCM_16"),
    _encoded("WAV", "FLOAT", channels=2),
    _encoded("FLAC", "PCM_16"),
    _encoded("AIFF", "PCM_24"),
    _encoded("OGG", "VORBIS"),
]


@st.composite
def damaged(draw) -> bytes:
    """A valid file with some bytes overwritten, and perhaps cut short."""
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(0, 6))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut] if draw(st.booleans()) else data)


@FUZZ
@given(content=st.binary(max_size=600) | damaged())
def test_audio_loads_sanely_or_raises_audio_error(folder, content):
    path = folder / "clip.wav"
    path.write_bytes(content)
    try:
        wave = load_audio(path)
    except AudioError as error:
        assert error.path == path
    else:
        assert wave.dtype == torch.float32 and wave.ndim == 1 and len(wave) > 0
        assert torch.isfinite(wave).all()
    try:
        seconds = probe_audio(path)  # what dataset preparation checks
    except AudioError as error:
        assert error.path == path
    else:
        assert math.isfinite(seconds) and seconds > 0


INDEX = {
    "schema": 1,
    "key": "k",
    "teacher": {},
    "data": {},
    "settings": {},
    "classes": CLASSES,
    "multi_label": False,
    "shards": [{"name": "shard-00000.h5", "clips": 1, "sha256": "0", "bytes": 1}],
    "skipped": [],
    "created": "",
    "stats": {},
}


SHARD = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["shard-00000.h5", "../up.h5", "", "."]) | JSON,
        "clips": st.integers(-1, 3) | EDGES | JSON,
        "sha256": st.just("0") | JSON,
        "bytes": st.integers(0, 9) | EDGES | JSON,
    }
)


def _edited(changes: dict, dropped: set) -> dict:
    return {key: value for key, value in {**INDEX, **changes}.items() if key not in dropped}


INDEX_FILE = (
    st.builds(
        _edited,
        st.dictionaries(st.sampled_from(sorted(INDEX)), JSON, max_size=3),
        st.sets(st.sampled_from(sorted(INDEX)), max_size=2),
    ).map(lambda index: json.dumps(index).encode())
    | st.lists(SHARD, min_size=1, max_size=2).map(
        lambda shards: json.dumps({**INDEX, "shards": shards}).encode()
    )
    | st.binary(max_size=40)
)


@FUZZ
@given(content=INDEX_FILE)
def test_cache_index_loads_or_raises_cache_error(folder, content):
    (folder / "index.json").write_bytes(content)
    try:
        loaded = CacheIndex.load(folder)
    except CacheError as error:
        assert error.path == folder / "index.json"
    else:
        assert all(isinstance(name, str) for name in loaded.classes)
        assert all(Path(shard.name).name == shard.name for shard in loaded.shards)
