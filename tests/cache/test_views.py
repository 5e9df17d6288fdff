"""Caches with views: [N, K, ...] arrays and per-(clip, view) parameters, checked like the rest."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.cache import CacheIndex, TeacherCache, shard_name, verify_cache, write_shard
from pipeline.cache.key import SCHEMA_VERSION
from pipeline.data.augment import ViewParams, ViewSettings
from pipeline.errors import CacheError

VIEWS, LAYERS, R, CLASSES = 3, 2, 6, ["yes", "no"]
IDS = ["a", "b", "c"]


def distributions(rng: np.random.Generator, *shape: int) -> np.ndarray:
    values = rng.random(shape).astype(np.float32) + 0.01
    return values / values.sum(axis=-1, keepdims=True)


def view_params(clip_id: str) -> list[ViewParams]:
    return [ViewParams(clip_id, 0)] + [
        ViewParams(clip_id, v, speed=(21, 20), shift_s=0.01 * v, gain_db=-v) for v in (1, 2)
    ]


@pytest.fixture
def arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "rollout": distributions(rng, len(IDS), VIEWS, LAYERS, R),
        "attention": distributions(rng, len(IDS), VIEWS, LAYERS, R),
        "logits": rng.normal(size=(len(IDS), VIEWS, len(CLASSES))).astype(np.float32),
        "maps": distributions(rng, len(IDS), VIEWS, LAYERS, R, R),
    }


def write(directory: Path, arrays: dict, params: list[list[ViewParams]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    info = write_shard(
        directory / shard_name(0),
        IDS,
        arrays["rollout"],
        arrays["attention"],
        arrays["logits"],
        arrays["maps"],
        {"views": VIEWS},
        params=[[p.to_json() for p in row] for row in params],
    )
    CacheIndex(
        schema=SCHEMA_VERSION,
        key=directory.name,
        teacher={"path": "t", "fingerprint": "t"},
        data={"root": "d", "fingerprint": "d"},
        settings={"views": VIEWS, "augment": ViewSettings().to_json(), "layers": [1, 2]},
        classes=CLASSES,
        multi_label=False,
        shards=[info],
    ).save(directory)
    return directory


@pytest.fixture
def cache_dir(tmp_path: Path, arrays: dict) -> Path:
    return write(tmp_path / "views", arrays, [view_params(i) for i in IDS])


def test_every_view_reads_back_by_clip_id(cache_dir: Path, arrays: dict) -> None:
    assert verify_cache(cache_dir) == []
    with TeacherCache(cache_dir) as cache:
        assert (cache.views, cache.num_layers, cache.resolution) == (VIEWS, LAYERS, R)
        assert cache.view_settings == ViewSettings()
        for row, clip_id in enumerate(IDS):
            for view in range(VIEWS):
                record = cache.record(clip_id, view)
                expected = arrays["rollout"][row, view].astype(np.float16).astype(np.float32)
                np.testing.assert_array_equal(record.rollout, expected)
                np.testing.assert_array_equal(
                    cache.logits(clip_id, view), arrays["logits"][row, view]
                )
                np.testing.assert_array_equal(
                    cache.vector(clip_id, "layer:2", view), record.attention[1]
                )
                assert cache.params(clip_id, view) == view_params(clip_id)[view]
        assert cache.to_dask("logits").compute().shape == (len(IDS), VIEWS, len(CLASSES))
        assert cache.to_dask("maps").compute().shape == (len(IDS), VIEWS, LAYERS, R, R)


def test_parameters_of_another_clip_or_view_are_refused(tmp_path: Path, arrays: dict) -> None:
    swapped = [view_params("a"), view_params("c"), view_params("b")]
    with pytest.raises(CacheError, match=r"params: 2 clip\(s\) .*'b', 'c'"):
        write(tmp_path / "swapped", arrays, swapped)
    reordered = [view_params(i)[::-1] for i in IDS]
    with pytest.raises(CacheError, match=r"params: 3 clip\(s\)"):
        write(tmp_path / "reordered", arrays, reordered)
    assert not list(tmp_path.glob("*/*.h5"))


def test_a_damaged_parameter_fails_loudly(cache_dir: Path) -> None:
    path = cache_dir / shard_name(0)
    with h5py.File(path, "r") as file:
        chunk = file["params"].id.get_chunk_info_by_coord((1, 0))
    with path.open("r+b") as raw:
        raw.seek(chunk.byte_offset + chunk.size // 2)
        byte = raw.read(1)[0]
        raw.seek(chunk.byte_offset + chunk.size // 2)
        raw.write(bytes([byte ^ 0x04]))
    problems = verify_cache(cache_dir)
    assert any(p.startswith("shard-00000.h5: params: 1 clip(s)") and "'b'" in p for p in problems)
    with TeacherCache(cache_dir) as cache:
        assert cache.params("c", 2) == view_params("c")[2]
        with pytest.raises(CacheError, match="parameters of view 1 of clip 'b'"):
            cache.params("b", 1)


def test_views_asked_for_and_views_stored_must_agree(cache_dir: Path) -> None:
    with TeacherCache(cache_dir) as cache:
        with pytest.raises(CacheError, match=r"view 3 of clip 'a' .* holds 3 view\(s\)"):
            cache.logits("a", 3)
    index = json.loads((cache_dir / "index.json").read_text())
    index["settings"]["views"] = 4
    (cache_dir / "index.json").write_text(json.dumps(index))
    with pytest.raises(CacheError, match="settings.views 4, shards hold 3"):
        TeacherCache(cache_dir)
