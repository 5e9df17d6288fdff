"""The teacher cache: keyed by clip id, atomic to write, loud when damaged or mismatched."""

from __future__ import annotations

import errno
import json
import os
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.cache import (
    SCHEMA_VERSION,
    CacheIndex,
    TeacherCache,
    cache_key,
    cache_lock,
    collect_garbage,
    list_caches,
    parse_attention_source,
    read_shard_attrs,
    read_shard_ids,
    shard_name,
    verify_cache,
    write_shard,
)
from pipeline.errors import CacheError
from pipeline.files import file_sha256

LAYERS, R = 3, 8
CLASSES = ["dog", "cat", "bird", "rain"]
SHARDS = [[f"clip-{i}" for i in range(5)], ["ünïcode/7", *(f"clip-{i}" for i in range(5, 9))]]
ALL_IDS = [clip_id for shard in SHARDS for clip_id in shard]


def distributions(rng: np.random.Generator, *shape: int) -> np.ndarray:
    values = rng.random(shape).astype(np.float32) + 0.01
    return values / values.sum(axis=-1, keepdims=True)


def clip_data(ids: list[str], seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {
        clip_id: {
            "rollout": distributions(rng, LAYERS, R),
            "attention": distributions(rng, LAYERS, R),
            "logits": rng.normal(size=len(CLASSES)).astype(np.float32),
            "maps": distributions(rng, LAYERS, R, R),
        }
        for clip_id in ids
    }


def build_cache(
    directory: Path, shards: list[list[str]], data: dict, maps: bool = False
) -> CacheIndex:
    """Write shards holding ``data`` for each shard's ids, in that order, and the index."""
    directory.mkdir(parents=True, exist_ok=True)
    infos = []
    for number, ids in enumerate(shards):
        arrays = {name: np.stack([data[i][name] for i in ids]) for name in data[ids[0]]}
        infos.append(
            write_shard(
                directory / shard_name(number),
                ids,
                arrays["rollout"],
                arrays["attention"],
                arrays["logits"],
                arrays["maps"] if maps else None,
                {"resolution": R},
            )
        )
    index = CacheIndex(
        schema=SCHEMA_VERSION,
        key=directory.name,
        teacher={"path": "/models/teacher", "fingerprint": "t"},
        data={"root": "/data/digits", "fingerprint": "d"},
        settings={"resolution": R},
        classes=CLASSES,
        multi_label=False,
        shards=infos,
    )
    index.save(directory)
    return index


def stored(array: np.ndarray) -> np.ndarray:
    """What a float16 cache gives back for ``array``."""
    return array.astype(np.float16).astype(np.float32)


@pytest.fixture
def data() -> dict:
    return clip_data(ALL_IDS)


@pytest.fixture
def cache_dir(tmp_path: Path, data: dict) -> Path:
    directory = tmp_path / "cache" / "0123456789abcdef"
    build_cache(directory, SHARDS, data)
    return directory


def flip_byte(path: Path, dataset: str, row: int) -> None:
    """Flip one bit in the middle of the chunk that holds ``row`` of ``dataset``."""
    with h5py.File(path, "r") as file:
        chunk = file[dataset].id.get_chunk_info_by_coord((row,) + (0,) * (file[dataset].ndim - 1))
    with path.open("r+b") as raw:
        raw.seek(chunk.byte_offset + chunk.size // 2)
        byte = raw.read(1)[0]
        raw.seek(chunk.byte_offset + chunk.size // 2)
        raw.write(bytes([byte ^ 0x04]))


def edit_index(directory: Path, change) -> None:
    path = directory / "index.json"
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))


# -- writing and reading -------------------------------------------------------------------
def test_roundtrip_by_id(tmp_path: Path, data: dict) -> None:
    directory = tmp_path / "key"
    build_cache(directory, SHARDS, data, maps=True)
    cache = TeacherCache(directory)
    assert cache.ids == ALL_IDS and len(cache) == len(ALL_IDS) and "ünïcode/7" in cache
    assert (cache.classes, cache.multi_label, cache.num_layers, cache.resolution) == (
        CLASSES,
        False,
        LAYERS,
        R,
    )
    for clip_id in ALL_IDS:
        record, expected = cache.record(clip_id), data[clip_id]
        for name in ("rollout", "attention"):
            value = getattr(record, name)
            assert value.dtype == np.float32 and value.shape == (LAYERS, R)
            np.testing.assert_array_equal(value, stored(expected[name]))
        assert record.logits.dtype == np.float32 and record.logits.shape == (len(CLASSES),)
        np.testing.assert_array_equal(record.logits, expected["logits"])
        np.testing.assert_array_equal(cache.logits(clip_id), expected["logits"])
        np.testing.assert_array_equal(cache.vector(clip_id), stored(expected["rollout"][-1]))
        np.testing.assert_array_equal(cache.vector(clip_id, "rollout:1"), record.rollout[0])
        np.testing.assert_array_equal(cache.vector(clip_id, "layer:2"), record.attention[1])
        assert cache.vector(clip_id).dtype == np.float32
    with h5py.File(directory / shard_name(1), "r") as file:
        assert file["rollout"].dtype == np.float16 and file["logits"].dtype == np.float32
        assert file["maps"].shape == (len(SHARDS[1]), LAYERS, R, R)
        assert file["rollout"].chunks == (1, LAYERS, R) and file["rollout"].fletcher32
        assert json.loads(file.attrs["settings"]) == {"resolution": R}
    assert read_shard_ids(directory / shard_name(1)) == SHARDS[1]
    assert verify_cache(directory) == []
    with pytest.raises(CacheError, match="'nope' is not in this cache"):
        cache.record("nope")
    cache.close()


def test_record_does_not_depend_on_shard_or_row_order(tmp_path: Path, data: dict) -> None:
    shuffled = [list(reversed(SHARDS[1])), SHARDS[0][::2], SHARDS[0][1::2]]
    build_cache(tmp_path / "a", SHARDS, data)
    build_cache(tmp_path / "b", shuffled, data)
    one, other = TeacherCache(tmp_path / "a"), TeacherCache(tmp_path / "b")
    assert sorted(one.ids) == sorted(other.ids) and one.ids != other.ids
    for clip_id in ALL_IDS:
        a, b = one.record(clip_id), other.record(clip_id)
        for name in ("rollout", "attention", "logits"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_index_roundtrip_and_refusals(cache_dir: Path) -> None:
    index = CacheIndex.load(cache_dir)
    assert index.clip_count == len(ALL_IDS) and index.created
    assert CacheIndex.from_json(json.loads(json.dumps(index.to_json()))) == index
    edit_index(cache_dir, lambda raw: raw.update(schema=SCHEMA_VERSION + 1))
    with pytest.raises(CacheError, match="schema 2, this tkd reads schema 1"):
        CacheIndex.load(cache_dir)
    (cache_dir / "index.json").write_text("{not json")
    with pytest.raises(CacheError, match="not valid JSON"):
        CacheIndex.load(cache_dir)
    (cache_dir / "index.json").write_text(json.dumps({"schema": SCHEMA_VERSION}))
    with pytest.raises(CacheError, match="malformed .*missing field"):
        TeacherCache(cache_dir)
    (cache_dir / "index.json").unlink()
    with pytest.raises(CacheError, match="index.json: missing"):
        TeacherCache(cache_dir)


# -- failed writes -------------------------------------------------------------------------
def test_disk_full_mid_write_leaves_nothing(
    tmp_path: Path, data: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = h5py.Group.create_dataset
    calls, on_disk = [], []

    def fill_disk(self, *args, **kwargs):
        calls.append(args)
        if len(calls) == 3:  # ids and rollout are written, attention fails
            on_disk.extend(path.name for path in tmp_path.iterdir())
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", fill_disk)
    ids = SHARDS[0]
    arrays = [np.stack([data[i][name] for i in ids]) for name in ("rollout", "attention", "logits")]
    with pytest.raises(CacheError, match=r"shard-00000\.h5: could not write: .*No space left"):
        write_shard(tmp_path / shard_name(0), ids, *arrays, None, {})
    assert on_disk == [f".{shard_name(0)}.{os.getpid()}.tmp"]
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_leaves_nothing(
    tmp_path: Path, data: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("pipeline.files.fsync_path", interrupt)
    ids = SHARDS[0]
    arrays = [np.stack([data[i][name] for i in ids]) for name in ("rollout", "attention", "logits")]
    with pytest.raises(KeyboardInterrupt):
        write_shard(tmp_path / shard_name(0), ids, *arrays, None, {})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda ids, a: (ids, {**a, "rollout": a["rollout"] * 0.9}), "rollout: 5 clip.* summing"),
        (lambda ids, a: (ids, {**a, "attention": -a["attention"]}), "attention: 5 clip.* negative"),
        (
            lambda ids, a: (ids, {**a, "logits": a["logits"] * np.nan}),
            "logits: 5 clip.* not finite",
        ),
        (lambda ids, a: ([ids[0], *ids[:-1]], a), "duplicate clip id.*'clip-0'"),
        (lambda ids, a: (ids[:-1], a), r"rollout has shape \[5, 3, 8\], expected \[4, layers, R\]"),
        (lambda ids, a: (ids, {**a, "attention": a["attention"][:, :2]}), "attention has shape"),
        (lambda ids, a: (ids, {**a, "maps": a["maps"][..., :3]}), "maps have shape"),
    ],
)
def test_bad_content_is_refused_and_leaves_nothing(
    tmp_path: Path, data: dict, spoil, message
) -> None:
    ids = SHARDS[0]
    arrays = {name: np.stack([data[i][name] for i in ids]) for name in data[ids[0]]}
    ids, arrays = spoil(ids, arrays)
    with pytest.raises(CacheError, match="refused to write: .*" + message):
        write_shard(
            tmp_path / shard_name(0),
            ids,
            arrays["rollout"],
            arrays["attention"],
            arrays["logits"],
            arrays["maps"],
            {},
        )
    assert list(tmp_path.iterdir()) == []


def test_write_replaces_an_older_shard_atomically(tmp_path: Path, data: dict) -> None:
    ids = SHARDS[0]
    arrays = [np.stack([data[i][name] for i in ids]) for name in ("rollout", "attention", "logits")]
    first = write_shard(tmp_path / shard_name(0), ids, *arrays, None, {"run": 1})
    second = write_shard(tmp_path / shard_name(0), ids, *arrays, None, {"run": 2})
    assert first.sha256 != second.sha256 and [p.name for p in tmp_path.iterdir()] == [shard_name(0)]


def test_shard_of_skipped_clips_only(tmp_path: Path, data: dict) -> None:
    """A job whose clips were all skipped is still recorded as done: an empty shard."""
    empty = write_shard(
        tmp_path / shard_name(1),
        [],
        np.zeros((0, LAYERS, R)),
        np.zeros((0, LAYERS, R)),
        np.zeros((0, len(CLASSES))),
        None,
        {"skipped": [{"id": "x", "reason": "silent"}]},
    )
    assert empty.clips == 0 and read_shard_ids(tmp_path / shard_name(1)) == []
    assert read_shard_attrs(tmp_path / shard_name(1))["skipped"][0]["id"] == "x"
    assert file_sha256(tmp_path / shard_name(1)) == empty.sha256
    index = build_cache(tmp_path, SHARDS[:1], data)
    index.shards.append(empty)
    index.save(tmp_path)
    cache = TeacherCache(tmp_path)
    assert cache.ids == SHARDS[0] and cache.to_dask().shape == (len(SHARDS[0]), LAYERS, R)
    assert verify_cache(tmp_path) == []


# -- damage --------------------------------------------------------------------------------
def test_truncated_shard_is_caught(cache_dir: Path) -> None:
    path = cache_dir / shard_name(1)
    size = path.stat().st_size
    os.truncate(path, size // 2)
    problems = verify_cache(cache_dir)
    assert any(p.startswith("shard-00001.h5: has") and "bytes" in p for p in problems)
    assert any(p.startswith("shard-00001.h5: unreadable") for p in problems)
    with pytest.raises(CacheError, match="disagrees with its shards: shard-00001.h5 has"):
        TeacherCache(cache_dir)
    # Even with an index re-written to the damaged size, the reader refuses cleanly.
    edit_index(cache_dir, lambda raw: raw["shards"][1].update(bytes=size // 2))
    with pytest.raises(CacheError, match="shard-00001.h5 is damaged"):
        TeacherCache(cache_dir)


def test_bit_flip_is_caught_on_read_and_by_verify(cache_dir: Path) -> None:
    flip_byte(cache_dir / shard_name(0), "rollout", row=3)
    problems = verify_cache(cache_dir)
    assert "shard-00000.h5: sha256 differs from index.json (changed or damaged)" in problems
    assert any("rollout: 1 clip(s) unreadable" in p and "'clip-3'" in p for p in problems)
    cache = TeacherCache(cache_dir)  # sizes and ids are intact: opening succeeds
    cache.record("clip-2")
    cache.vector("clip-3", "layer:1")  # attention is in other chunks: still readable
    with pytest.raises(
        CacheError, match=r"shard-00000\.h5: cannot read 'rollout' of clip 'clip-3'"
    ):
        cache.record("clip-3")
    with pytest.raises(CacheError, match=r"shard-00000\.h5: cannot read 'rollout'"):
        cache.to_dask("rollout").compute(scheduler="synchronous")


def test_index_that_disagrees_with_shards_is_refused(cache_dir: Path) -> None:
    edit_index(cache_dir, lambda raw: raw["shards"][0].update(clips=6))
    with pytest.raises(CacheError, match="disagrees with its shards: shard-00000.h5 holds 5 clips"):
        TeacherCache(cache_dir)
    edit_index(cache_dir, lambda raw: raw["shards"][0].update(clips=5))
    (cache_dir / shard_name(1)).unlink()
    with pytest.raises(CacheError, match="disagrees with its shards: shard-00001.h5 is missing"):
        TeacherCache(cache_dir)
    assert "shard-00001.h5: missing" in verify_cache(cache_dir)


def test_clip_in_two_shards_is_refused(tmp_path: Path, data: dict) -> None:
    build_cache(tmp_path, [SHARDS[0], ["clip-4", "clip-5"]], data)
    with pytest.raises(CacheError, match="'clip-4' is in both shard-00000.h5 and shard-00001.h5"):
        TeacherCache(tmp_path)
    assert verify_cache(tmp_path) == ["1 clip id(s) in more than one shard: 'clip-4'"]


# -- stage two's guard ---------------------------------------------------------------------
def test_check_matches(cache_dir: Path) -> None:
    cache = TeacherCache(cache_dir)
    cache.check_matches(ALL_IDS[:4], CLASSES)
    with pytest.raises(CacheError, match="class 0 is 'dog' in the cache, 'cat' in the dataset"):
        cache.check_matches(ALL_IDS, ["cat", "dog", "bird", "rain"])
    with pytest.raises(CacheError, match="the cache has 4 classes, the dataset 5"):
        cache.check_matches(ALL_IDS, [*CLASSES, "wind"])
    wanted = [*ALL_IDS, "gone-1", "gone-2", "gone-3", "gone-4"]
    with pytest.raises(
        CacheError, match=r"4 of the dataset's 14 clips are not in the cache \(e.g. 'gone-1', "
    ) as caught:
        cache.check_matches(wanted, CLASSES)
    assert str(cache_dir) in str(caught.value) and "and 1 more" in str(caught.value)


def test_check_matches_points_at_skipped_clips(cache_dir: Path) -> None:
    edit_index(cache_dir, lambda raw: raw.update(skipped=[{"id": "bad", "reason": "silent"}]))
    with pytest.raises(CacheError, match="1 were skipped at extraction"):
        TeacherCache(cache_dir).check_matches([*ALL_IDS, "bad"], CLASSES)


@pytest.mark.parametrize(
    ("source", "parsed"),
    [("rollout", ("rollout", None)), ("rollout:3", ("rollout", 3)), ("layer:12", ("layer", 12))],
)
def test_parse_attention_source(source: str, parsed: tuple) -> None:
    assert parse_attention_source(source) == parsed


@pytest.mark.parametrize("source", ["", "layer", "layer:0", "rollout:", "layer:-1", "mean", "x:1"])
def test_parse_attention_source_refuses(source: str) -> None:
    with pytest.raises(ValueError, match='use "rollout", "rollout:K" or "layer:K"'):
        parse_attention_source(source)


def test_vector_refuses_a_layer_the_cache_lacks(cache_dir: Path) -> None:
    with pytest.raises(CacheError, match="teacher layer 4, but the cache holds layers 1, 2, 3"):
        TeacherCache(cache_dir).vector("clip-0", "layer:4")


# -- keys ----------------------------------------------------------------------------------
def test_cache_key_is_stable_and_sensitive() -> None:
    parts = {
        "teacher": {"fingerprint": "abc", "path": Path("/models/t")},
        "data": {"fingerprint": "def"},
        "settings": {"resolution": 50, "row": 0, "layers": [1, 2]},
    }
    reordered = {
        "settings": {"layers": [1, 2], "row": 0, "resolution": np.int64(50)},
        "data": {"fingerprint": "def"},
        "teacher": {"path": "/models/t", "fingerprint": "abc"},
    }
    key = cache_key(parts)
    assert len(key) == 16 and int(key, 16) >= 0 and cache_key(reordered) == key
    changed = [
        {**parts, "teacher": {**parts["teacher"], "fingerprint": "abd"}},
        {**parts, "data": {"fingerprint": "deg"}},
        {**parts, "settings": {**parts["settings"], "resolution": 51}},
        {**parts, "settings": {**parts["settings"], "layers": [2, 1]}},
        {**parts, "extra": None},
    ]
    assert len({cache_key(p) for p in changed} | {key}) == len(changed) + 1
    with pytest.raises(TypeError, match="JSON values, not set"):
        cache_key({"settings": {1, 2}})


# -- processes -----------------------------------------------------------------------------
class VectorDataset:
    """A map-style dataset as stage two would build it."""

    def __init__(self, cache: TeacherCache):
        self.cache = cache

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, index: int) -> tuple[str, np.ndarray, int]:
        clip_id = self.cache.ids[index]
        return clip_id, self.cache.vector(clip_id), os.getpid()


def test_reader_survives_pickling(cache_dir: Path) -> None:
    cache = TeacherCache(cache_dir)
    before = cache.record("clip-7")  # opens a handle, which must not be pickled
    copy = pickle.loads(pickle.dumps(cache))
    np.testing.assert_array_equal(copy.record("clip-7").rollout, before.rollout)
    assert copy.ids == cache.ids


def test_reader_in_a_fresh_process(cache_dir: Path) -> None:
    """What a spawned DataLoader worker or a dask worker does: unpickle, then read."""
    cache = TeacherCache(cache_dir)
    expected = cache.vector("clip-7", "layer:2")
    script = (
        "import pickle, sys; cache = pickle.load(sys.stdin.buffer); "
        "sys.stdout.buffer.write(pickle.dumps(cache.vector('clip-7', 'layer:2')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=pickle.dumps(cache),
        capture_output=True,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    np.testing.assert_array_equal(pickle.loads(done.stdout), expected)


def test_reader_in_forked_dataloader_workers(cache_dir: Path) -> None:
    torch = pytest.importorskip("torch")
    cache = TeacherCache(cache_dir)
    cache.vector(ALL_IDS[0])  # the parent holds open handles when the workers fork
    loader = torch.utils.data.DataLoader(
        VectorDataset(cache), batch_size=2, num_workers=2, multiprocessing_context="fork"
    )
    seen, pids = {}, set()
    for ids, vectors, worker_pids in loader:
        seen.update(zip(ids, vectors.numpy(), strict=True))
        pids.update(worker_pids.tolist())
    assert sorted(seen) == sorted(ALL_IDS) and len(pids) == 2 and os.getpid() not in pids
    for clip_id, vector in seen.items():
        np.testing.assert_array_equal(vector, cache.vector(clip_id))


def test_to_dask_matches_record(tmp_path: Path, data: dict) -> None:
    build_cache(tmp_path, SHARDS, data, maps=True)
    cache = TeacherCache(tmp_path)
    rollout = cache.to_dask()
    assert rollout.shape == (len(ALL_IDS), LAYERS, R) and rollout.dtype == np.float32
    assert rollout.chunks[0] == tuple(len(ids) for ids in SHARDS)
    values = {name: cache.to_dask(name).compute() for name in ("rollout", "attention", "logits")}
    for row, clip_id in enumerate(cache.ids):
        record = cache.record(clip_id)
        for name, array in values.items():
            np.testing.assert_array_equal(array[row], getattr(record, name))
    assert cache.to_dask("maps").shape == (len(ALL_IDS), LAYERS, R, R)
    with pytest.raises(ValueError, match="no array 'ids'"):
        cache.to_dask("ids")


# -- maintenance ---------------------------------------------------------------------------
def test_cache_lock_excludes_a_second_holder(tmp_path: Path) -> None:
    directory = tmp_path / "key"
    acquired = threading.Event()

    def second_holder() -> None:
        with cache_lock(directory):
            acquired.set()

    with cache_lock(directory):
        assert (directory / ".lock").read_text() == str(os.getpid())
        with pytest.raises(
            CacheError, match=rf"another extraction holds the lock \(pid {os.getpid()}\)"
        ):
            with cache_lock(directory, wait=False):
                pass
        waiter = threading.Thread(target=second_holder)
        waiter.start()
        time.sleep(0.2)
        assert not acquired.is_set()
    waiter.join(timeout=5)
    assert acquired.is_set()
    with cache_lock(directory, wait=False):
        pass


def test_list_caches(tmp_path: Path, data: dict) -> None:
    index = build_cache(tmp_path / "aaaa", SHARDS, data)
    build_cache(tmp_path / "bbbb", SHARDS[:1], data)
    (tmp_path / "cccc").mkdir()  # an unfinished extraction: no index, not a cache
    (tmp_path / "cccc" / shard_name(0)).write_bytes(b"partial")
    (tmp_path / "dddd").mkdir()
    (tmp_path / "dddd" / "index.json").write_text("[]")
    rows = list_caches(tmp_path)
    assert [row["key"] for row in rows] == ["aaaa", "bbbb", "dddd"]
    assert rows[0] == {
        "key": "aaaa",
        "dataset": "/data/digits",
        "teacher": "/models/teacher",
        "clips": len(ALL_IDS),
        "bytes": sum(shard.bytes for shard in index.shards),
        "created": index.created,
        "problem": None,
    }
    assert rows[1]["clips"] == len(SHARDS[0])
    assert rows[2]["problem"] == "not a JSON object" and rows[2]["clips"] == 0
    assert rows[2]["bytes"] == 2 and rows[2]["created"] is None
    assert list_caches(tmp_path / "nowhere") == []


def test_collect_garbage(cache_dir: Path) -> None:
    root = cache_dir.parent
    dead = subprocess.Popen(["true"])
    dead.wait()
    killed = cache_dir / f".{shard_name(2)}.{dead.pid}.tmp"
    killed_index = cache_dir / f".index.json.{dead.pid}.tmp"
    live = cache_dir / f".{shard_name(3)}.{os.getpid()}.tmp"
    for path in (killed, killed_index, live):
        path.write_bytes(b"half a shard")
    busy = root / "busy"
    busy.mkdir()
    in_use = busy / f".{shard_name(0)}.{dead.pid}.tmp"
    in_use.write_bytes(b"")
    with cache_lock(busy):
        removed = collect_garbage(root)
    assert sorted(removed) == sorted([killed, killed_index])
    assert live.exists() and in_use.exists()
    assert (cache_dir / "index.json").exists() and (cache_dir / shard_name(0)).exists()
    assert collect_garbage(root) == [in_use]
    assert TeacherCache(cache_dir).ids == ALL_IDS
