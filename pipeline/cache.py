"""Teacher caches: what stage one computes once and stage two reads many times.

A cache is a folder ``<cache_root>/<key>/`` named by a hash of everything its content
depends on (teacher, dataset, settings), so a changed input can never be served stale
vectors. It holds HDF5 shards ``shard-00000.h5, ...`` and ``index.json``, written last:
a folder without an index is an unfinished extraction, never a cache.

Each shard keys its rows by clip id (the ``ids`` dataset), never by row order. Arrays are
chunked one clip per chunk, byte-shuffled and lzf-compressed, and checksummed (fletcher32),
so a flipped bit surfaces as an error on read instead of a wrong target. Measured here on
24-layer float16 vectors, random single-clip reads: lzf reads 1.1-3x faster than gzip
level 4 (one [24, 400] chunk 103-191 us against 145-205 us; [24, 50] 19 against 57 us) for
files 6-18 % larger. Both shrink rollout-like vectors by 40-70 % against raw storage
(which reads in ~20 us), but only by 1-10 % when the vectors are noise-like.

Shards are written to a temporary name, verified after re-opening, then renamed into
place; an interrupted writer leaves only a ``.*.tmp`` file that `collect_garbage` removes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from pipeline.errors import CacheError

if TYPE_CHECKING:
    import dask.array

SCHEMA_VERSION = 1
INDEX_FILE = "index.json"
LOCK_FILE = ".lock"
REQUIRED_DATASETS = ("ids", "rollout", "attention", "logits")
ARRAYS = ("rollout", "attention", "logits", "maps")
VECTORS = ("rollout", "attention")
# float16 rounds each probability by at most 2**-11 of itself, so a sum of them drifts by at
# most ~4.9e-4 from the float32 sum; twice that still catches any real normalisation bug.
SUM_TOLERANCE = 1e-3
SOURCE_FORMS = '"rollout", "rollout:K" or "layer:K" (K = 1-based layer)'
_FILTERS: dict[str, Any] = {"compression": "lzf", "shuffle": True, "fletcher32": True}
_BLOCK_BYTES = 1 << 26  # verification reads this much at a time, so huge `maps` fit in memory
_SHOWN = 3  # example clip ids quoted in a message


# -- naming ------------------------------------------------------------------------------
def cache_key(parts: dict[str, Any]) -> str:
    """Folder name for a cache: equal parts give the same key whatever the dict order,
    and any change (or a new schema) gives another, so caches never go stale silently."""
    text = json.dumps(
        {"schema": SCHEMA_VERSION, "parts": parts},
        sort_keys=True,
        separators=(",", ":"),
        allow_nan=False,
        default=_jsonable,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.h5"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cache settings must be JSON values, not {type(value).__name__}")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# -- index ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShardInfo:
    """What the index records about a shard, so a reader can tell a damaged or swapped file."""

    name: str
    clips: int
    sha256: str
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ShardInfo:
        name = str(raw["name"])
        if Path(name).name != name or name in ("", ".", ".."):
            raise ValueError(f"shard name {name!r} is not a file name")
        return cls(name, int(raw["clips"]), str(raw["sha256"]), int(raw["bytes"]))


@dataclass
class CacheIndex:
    """``index.json``: what the cache was made from and which shards make it up.

    By convention ``teacher`` holds ``path`` and ``fingerprint``, ``data`` holds ``root``
    and ``fingerprint`` (what `list_caches` shows); ``skipped`` lists ``{"id", "reason"}``
    for clips the teacher could not process.
    """

    schema: int
    key: str
    teacher: dict[str, Any]
    data: dict[str, Any]
    settings: dict[str, Any]
    classes: list[str]
    multi_label: bool
    shards: list[ShardInfo]
    skipped: list[dict[str, Any]] = field(default_factory=list)
    created: str = field(default_factory=_now)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def clip_count(self) -> int:
        return sum(shard.clips for shard in self.shards)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> CacheIndex:
        missing = [f.name for f in fields(cls) if f.name not in raw]
        if missing:
            raise KeyError(f"missing field(s) {', '.join(missing)}")
        values = {f.name: raw[f.name] for f in fields(cls)}
        for name in ("teacher", "data", "settings", "stats"):
            if not isinstance(values[name], dict):
                raise TypeError(f"{name!r} must be an object")
        if not isinstance(values["classes"], list) or not isinstance(values["shards"], list):
            raise TypeError("'classes' and 'shards' must be lists")
        values["classes"] = [str(name) for name in values["classes"]]
        values["shards"] = [ShardInfo.from_json(shard) for shard in values["shards"]]
        return cls(**values)

    def save(self, directory: str | Path) -> None:
        """Write atomically: the index is what makes a folder a cache, so never half of one."""
        _write_atomic(Path(directory) / INDEX_FILE, json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> CacheIndex:
        path = Path(directory) / INDEX_FILE
        if not path.is_file():
            raise CacheError(path, "missing: not a cache, or its extraction did not finish")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CacheError(path, f"not valid JSON ({error})") from None
        if not isinstance(raw, dict):
            raise CacheError(path, "not a JSON object")
        if raw.get("schema") != SCHEMA_VERSION:
            raise CacheError(
                path,
                f"schema {raw.get('schema')!r}, this tkd reads schema {SCHEMA_VERSION}: "
                "extract the cache again",
            )
        try:
            return cls.from_json(raw)
        except (KeyError, TypeError, ValueError, OverflowError) as error:  # int(inf): Overflow
            raise CacheError(path, f"malformed ({error})") from None


# -- writing -------------------------------------------------------------------------------
def write_shard(
    path: str | Path,
    ids: list[str],
    rollout: np.ndarray,
    attention: np.ndarray,
    logits: np.ndarray,
    maps: np.ndarray | None,
    attrs: dict[str, Any],
) -> ShardInfo:
    """Write one shard so that it either exists complete and verified, or not at all.

    ``rollout`` and ``attention`` are [N, layers, R] rows that each sum to 1, ``logits``
    [N, C], ``maps`` [N, layers, R, R] or None; ``attrs`` (the settings) is stored as JSON.
    N may be 0, so a job whose clips were all skipped can still be recorded as done.
    """
    path, ids = Path(path), list(ids)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        arrays = {
            "rollout": np.asarray(rollout, dtype=np.float16),
            "attention": np.asarray(attention, dtype=np.float16),
            "logits": np.asarray(logits, dtype=np.float32),
        }
        if maps is not None:
            arrays["maps"] = np.asarray(maps, dtype=np.float16)
        with h5py.File(temporary, "w") as file:
            file.create_dataset("ids", data=ids, dtype=h5py.string_dtype("utf-8"))
            for name, array in arrays.items():
                tail = array.shape[1:]  # unlimited rows, so an empty shard takes (1, ...) chunks
                file.create_dataset(
                    name, data=array, chunks=(1, *tail), maxshape=(None, *tail), **_FILTERS
                )
            file.attrs["schema"] = SCHEMA_VERSION
            file.attrs["settings"] = json.dumps(attrs, sort_keys=True, default=_jsonable)
            file.attrs["ids_sha256"] = _ids_digest(ids)
        _fsync(temporary)
        with h5py.File(temporary, "r") as file:
            written, problems = _inspect(file, classes=None)
            if written != ids:
                problems.append("clip ids read back differ from those written")
            problems += _check_values(file, written)
        if problems:
            raise CacheError(path, "refused to write: " + "; ".join(problems))
        info = ShardInfo(path.name, len(ids), file_sha256(temporary), temporary.stat().st_size)
        os.replace(temporary, path)
        _fsync(path.parent)
        return info
    except BaseException as error:  # interrupts too: a temporary must never outlive its writer
        temporary.unlink(missing_ok=True)
        if isinstance(error, (OSError, ValueError, TypeError)):
            raise CacheError(path, f"could not write: {error}") from error
        raise


def read_shard_ids(path: str | Path) -> list[str]:
    """Clip ids a shard holds: how a resumed extraction knows what is already done."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as file:
            return _read_ids(file)
    except (OSError, KeyError, ValueError) as error:
        raise CacheError(path, f"cannot read clip ids ({error})") from None


def read_shard_attrs(path: str | Path) -> dict[str, Any]:
    """The ``attrs`` a shard was written with (its settings, as `write_shard` stored them)."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as file:
            return json.loads(file.attrs["settings"])
    except (OSError, KeyError, ValueError) as error:
        raise CacheError(path, f"cannot read settings ({error})") from None


# -- reading -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TeacherRecord:
    """One clip's cached teacher outputs, as float32."""

    rollout: np.ndarray  # [layers, R]: row k is the rollout through layers 1..k+1
    attention: np.ndarray  # [layers, R]: row k is the attention layer k+1 received
    logits: np.ndarray  # [C]


def parse_attention_source(source: str) -> tuple[str, int | None]:
    """``"rollout"`` -> ("rollout", None); ``"rollout:K"`` / ``"layer:K"`` -> (kind, K)."""
    kind, sep, number = source.partition(":")
    if kind == "rollout" and not sep:
        return "rollout", None
    if kind in ("rollout", "layer") and number.isdigit() and int(number) >= 1:
        return kind, int(number)
    raise ValueError(f"unknown attention source {source!r}; use {SOURCE_FORMS}")


class TeacherCache:
    """Reads a finished cache by clip id.

    Construction checks that index.json and the shards agree (presence, sizes, ids, shapes)
    without reading any vectors. HDF5 handles open lazily, one per shard per process, so a
    reader built in the parent can be used in forked or spawned DataLoader workers.
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.index = CacheIndex.load(self.directory)
        self.classes = list(self.index.classes)
        self.multi_label = self.index.multi_label
        self._paths = [self.directory / shard.name for shard in self.index.shards]
        self._where: dict[str, tuple[int, int]] = {}
        self.ids: list[str] = []
        self._shapes: dict[str, tuple[int, ...]] = {}
        if not self.index.shards:
            raise CacheError(self.directory, "index.json lists no shards")
        for number, (info, path) in enumerate(zip(self.index.shards, self._paths, strict=True)):
            ids, shapes = self._open_shard(info, path)
            if not self._shapes:
                self._shapes = shapes
            elif shapes != self._shapes:
                raise CacheError(
                    self.directory,
                    f"shards disagree: {info.name} holds {_describe(shapes)}, "
                    f"{self.index.shards[0].name} {_describe(self._shapes)}",
                )
            for row, clip_id in enumerate(ids):
                if clip_id in self._where:
                    other = self.index.shards[self._where[clip_id][0]].name
                    raise self._disagree(f"clip {clip_id!r} is in both {other} and {info.name}")
                self._where[clip_id] = (number, row)
            self.ids += ids
        self.num_layers, self.resolution = self._shapes["rollout"]
        self._pid = os.getpid()
        self._handles: dict[int, h5py.File] = {}
        self._datasets: dict[tuple[int, str], h5py.Dataset] = {}

    def _disagree(self, reason: str) -> CacheError:
        return CacheError(self.directory, f"index.json disagrees with its shards: {reason}")

    def _open_shard(self, info: ShardInfo, path: Path) -> tuple[list[str], dict]:
        if not path.is_file():
            raise self._disagree(f"{info.name} is missing")
        size = path.stat().st_size
        if size != info.bytes:
            raise self._disagree(f"{info.name} has {size} bytes, index.json records {info.bytes}")
        try:
            with h5py.File(path, "r") as file:
                ids, problems = _inspect(file, classes=len(self.classes))
                shapes = {name: file[name].shape[1:] for name in ARRAYS if name in file}
        except OSError as error:
            raise CacheError(self.directory, f"{info.name} is damaged ({error})") from None
        if problems:
            raise CacheError(self.directory, f"{info.name}: {'; '.join(problems)}")
        if len(ids) != info.clips:
            raise self._disagree(f"{info.name} holds {len(ids)} clips, index.json {info.clips}")
        return ids, shapes

    # -- access -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, clip_id: object) -> bool:
        return clip_id in self._where

    def record(self, clip_id: str) -> TeacherRecord:
        shard, row = self._locate(clip_id)
        return TeacherRecord(
            rollout=self._read(shard, "rollout", (row,), clip_id),
            attention=self._read(shard, "attention", (row,), clip_id),
            logits=self._read(shard, "logits", (row,), clip_id),
        )

    def vector(self, clip_id: str, source: str = "rollout") -> np.ndarray:
        """[R] target for one clip: the full rollout, the rollout through layer K, or the
        attention layer K received."""
        kind, layer = parse_attention_source(source)
        layer = self.num_layers if layer is None else layer
        if layer > self.num_layers:
            raise ValueError(
                f"attention source {source!r} asks for layer {layer}, "
                f"but the cache {self.directory} holds {self.num_layers} layers"
            )
        name = "rollout" if kind == "rollout" else "attention"
        shard, row = self._locate(clip_id)
        return self._read(shard, name, (row, layer - 1), clip_id)

    def logits(self, clip_id: str) -> np.ndarray:
        shard, row = self._locate(clip_id)
        return self._read(shard, "logits", (row,), clip_id)

    def to_dask(self, name: str = "rollout") -> dask.array.Array:
        """All clips' ``name`` array, [N, ...] float32 in ``self.ids`` order, one lazily read
        chunk per shard (for whole-cache statistics without loading it all)."""
        import dask
        import dask.array as da

        if name not in self._shapes:
            raise ValueError(f"no array {name!r} in this cache; it holds {', '.join(self._shapes)}")
        parts = [
            da.from_delayed(
                dask.delayed(_read_array, pure=True)(str(path), name),
                shape=(info.clips, *self._shapes[name]),
                dtype=np.float32,
            )
            for info, path in zip(self.index.shards, self._paths, strict=True)
        ]
        return da.concatenate(parts, axis=0)

    def check_matches(
        self,
        clip_ids: list[str],
        classes: list[str],
        resolution: int | None = None,
        data_fingerprint: str | None = None,
    ) -> None:
        """Refuse a cache that does not fit the dataset and student: a silent partial join
        would train on the wrong targets or on fewer clips than asked.

        ``data_fingerprint`` (``Manifest.fingerprint()``) must equal the one recorded at
        extraction: same ids and classes over other or changed audio files are refused too.
        """
        classes = list(classes)
        if classes != self.classes:
            raise CacheError(
                self.directory, f"classes differ: {_class_difference(self.classes, classes)}"
            )
        missing = [clip_id for clip_id in clip_ids if clip_id not in self._where]
        if missing:
            skipped = {entry.get("id") for entry in self.index.skipped}
            was_skipped = sum(clip_id in skipped for clip_id in missing)
            note = (
                f"; {was_skipped} were skipped at extraction (see index.json)"
                if was_skipped
                else ""
            )
            raise CacheError(
                self.directory,
                f"{len(missing)} of the dataset's {len(clip_ids)} clips are not in the cache "
                f"(e.g. {_examples(missing)}){note}",
            )
        if resolution is not None and resolution != self.resolution:
            raise CacheError(
                self.directory,
                f"vectors have {self.resolution} frames, the student needs {resolution}: "
                "extract with the student's resolution",
            )
        recorded = self.index.data.get("fingerprint")
        if data_fingerprint is not None and recorded != data_fingerprint:
            raise CacheError(
                self.directory,
                f"extracted from another dataset ({self.index.data.get('root')}) or from audio "
                "files since moved, replaced or changed (paths, sizes or mtimes differ): "
                "extract the teacher again for this dataset",
            )

    # -- handles ------------------------------------------------------------------------
    def _locate(self, clip_id: str) -> tuple[int, int]:
        try:
            return self._where[clip_id]
        except KeyError:
            raise CacheError(self.directory, f"clip {clip_id!r} is not in this cache") from None

    def _read(self, shard: int, name: str, where: tuple[int, ...], clip_id: str) -> np.ndarray:
        try:
            return np.asarray(self._dataset(shard, name)[where], dtype=np.float32)
        except OSError as error:
            raise CacheError(
                self._paths[shard], f"cannot read {name!r} of clip {clip_id!r}, damaged? ({error})"
            ) from None

    def _dataset(self, shard: int, name: str) -> h5py.Dataset:
        """An open dataset, kept: re-opening one per read costs 3x the read (its chunk index
        and chunk cache start cold each time)."""
        if self._pid != os.getpid():  # forked: the parent's handles are not safe to share
            self._handles, self._datasets, self._pid = {}, {}, os.getpid()
        dataset = self._datasets.get((shard, name))
        if dataset is None:
            if shard not in self._handles:
                self._handles[shard] = h5py.File(self._paths[shard], "r")
            dataset = self._datasets[shard, name] = self._handles[shard][name]
        return dataset

    def close(self) -> None:
        if self._pid == os.getpid():
            for handle in self._handles.values():
                handle.close()
        self._handles, self._datasets = {}, {}

    def __enter__(self) -> TeacherCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"], state["_datasets"] = {}, {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()


def _read_array(path: str, name: str) -> np.ndarray:
    """One shard's whole array: a top-level function so dask can ship it to workers."""
    try:
        with h5py.File(path, "r") as file:
            return np.asarray(file[name][()], dtype=np.float32)
    except OSError as error:
        raise CacheError(path, f"cannot read {name!r}, damaged? ({error})") from None


# -- maintenance ---------------------------------------------------------------------------
def verify_cache(directory: str | Path) -> list[str]:
    """Everything wrong with a cache, one line each; empty when sound. Reads every byte."""
    directory = Path(directory)
    try:
        index = CacheIndex.load(directory)
    except CacheError as error:
        return [str(error)]
    problems: list[str] = []
    if not index.shards:
        problems.append("index.json lists no shards")
    owner: dict[str, str] = {}
    duplicates: list[str] = []
    for info in index.shards:
        ids, found = _verify_shard(directory / info.name, info, len(index.classes))
        problems += [f"{info.name}: {problem}" for problem in found]
        for clip_id in ids:
            if clip_id in owner:
                duplicates.append(clip_id)
            owner.setdefault(clip_id, info.name)
    if duplicates:
        problems.append(
            f"{len(duplicates)} clip id(s) in more than one shard: {_examples(duplicates)}"
        )
    return problems


def _verify_shard(path: Path, info: ShardInfo, classes: int) -> tuple[list[str], list[str]]:
    if not path.is_file():
        return [], ["missing"]
    problems = []
    if path.stat().st_size != info.bytes:
        problems.append(f"has {path.stat().st_size} bytes, index.json records {info.bytes}")
    if file_sha256(path) != info.sha256:
        problems.append("sha256 differs from index.json (changed or damaged)")
    try:
        with h5py.File(path, "r") as file:
            ids, found = _inspect(file, classes)
            problems += found
            if len(ids) != info.clips:
                problems.append(f"holds {len(ids)} clips, index.json records {info.clips}")
            problems += _check_values(file, ids)
    except OSError as error:
        return [], [*problems, f"unreadable ({error})"]
    return ids, problems


def list_caches(root: str | Path) -> list[dict[str, Any]]:
    """One row per cache folder with an index under ``root``: key, dataset, teacher, clips,
    bytes, created, and ``problem`` (None, or why the index is unusable: 0 clips then)."""
    root = Path(root)
    if not root.is_dir():
        return []
    rows = []
    for folder in sorted(path for path in root.iterdir() if (path / INDEX_FILE).is_file()):
        try:
            index = CacheIndex.load(folder)
        except CacheError as error:
            size = sum(path.stat().st_size for path in folder.iterdir() if path.is_file())
            rows.append(
                {
                    "key": folder.name,
                    "dataset": None,
                    "teacher": None,
                    "clips": 0,  # readers refuse it: no usable clips
                    "bytes": size,
                    "created": None,
                    "problem": error.problem,
                }
            )
            continue
        rows.append(
            {
                "key": index.key,
                "dataset": index.data.get("root"),
                "teacher": index.teacher.get("path"),
                "clips": index.clip_count,
                "bytes": sum(shard.bytes for shard in index.shards),
                "created": index.created,
                "problem": None,
            }
        )
    return rows


def collect_garbage(root: str | Path) -> list[Path]:
    """Remove temporaries left by killed writers; returns what was removed.

    A folder whose lock is held is skipped (its extraction may be writing), and so is a
    temporary whose writer process, named in the file name, is still alive.
    """
    root = Path(root)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for folder in sorted(path for path in root.iterdir() if path.is_dir()):
        stale = [path for path in sorted(folder.glob(".*.tmp")) if not _writer_alive(path)]
        if not stale:
            continue
        try:
            with cache_lock(folder, wait=False):
                for path in stale:
                    path.unlink(missing_ok=True)
                    removed.append(path)
        except CacheError:
            continue
    return removed


@contextmanager
def cache_lock(directory: str | Path, wait: bool = True) -> Iterator[None]:
    """Hold ``directory/.lock`` so two extractions of one key never write at once.

    flock is released by the kernel when the holder dies, so no lock is ever stale. Locks
    taken twice in one process conflict too (each call opens its own descriptor).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
            who = f" (pid {holder})" if holder else ""
            raise CacheError(directory, f"another extraction holds the lock{who}") from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(descriptor, 0)
    finally:
        os.close(descriptor)  # releases the flock


# -- shard checks --------------------------------------------------------------------------
def _inspect(file: h5py.File, classes: int | None) -> tuple[list[str], list[str]]:
    """Clip ids and layout problems of an open shard, reading no vectors."""
    missing = [name for name in REQUIRED_DATASETS if name not in file]
    if missing:
        return [], [f"missing dataset(s) {', '.join(missing)}"]
    problems = []
    try:
        ids = _read_ids(file)
    except (OSError, ValueError) as error:
        ids, problems = [], [f"clip ids unreadable ({error})"]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        repeated = [clip_id for clip_id in ids if clip_id in seen or seen.add(clip_id)]
        problems.append(f"duplicate clip id(s) {_examples(repeated)}")
    count = file["ids"].shape[0]
    rollout = file["rollout"].shape
    if len(rollout) != 3 or rollout[0] != count or 0 in rollout[1:]:
        problems.append(f"rollout has shape {list(rollout)}, expected [{count}, layers, R]")
    elif file["attention"].shape != rollout:
        problems.append(
            f"attention has shape {list(file['attention'].shape)}, rollout {list(rollout)}"
        )
    logits = file["logits"].shape
    if len(logits) != 2 or logits[0] != count or (classes is not None and logits[1] != classes):
        expected = f"[{count}, {classes if classes is not None else 'C'}]"
        problems.append(f"logits have shape {list(logits)}, expected {expected}")
    if "maps" in file and len(rollout) == 3 and file["maps"].shape != (*rollout, rollout[-1]):
        problems.append(
            f"maps have shape {list(file['maps'].shape)}, expected {[*rollout, rollout[-1]]}"
        )
    if file.attrs.get("schema") != SCHEMA_VERSION:
        problems.append(f"schema {file.attrs.get('schema')!r}, expected {SCHEMA_VERSION}")
    return ids, problems


def _read_ids(file: h5py.File) -> list[str]:
    """Clip ids, checked against their digest: the vlen string heap has no HDF5 checksum."""
    ids = [str(clip_id) for clip_id in file["ids"].asstr()[()]]
    if file.attrs.get("ids_sha256") != _ids_digest(ids):
        raise ValueError("clip ids do not match their recorded checksum")
    return ids


def _check_values(file: h5py.File, ids: list[str]) -> list[str]:
    """Rows that cannot be read (checksum), are not finite, or are not distributions."""
    problems = []
    for name in ARRAYS:
        if name not in file:
            continue
        found: dict[str, list[str]] = {}
        for start, stop, block in _blocks(file[name]):
            labels = [ids[row] if row < len(ids) else f"row {row}" for row in range(start, stop)]
            if block is None:
                found.setdefault("unreadable (checksum mismatch or damage)", []).extend(labels)
                continue
            rows = block.reshape(len(block), -1)
            finite = np.isfinite(rows).all(axis=1)
            flags = {"not finite": ~finite}
            if name in VECTORS:
                flags["negative"] = (rows < 0).any(axis=1)
                error = np.abs(block.sum(axis=-1, dtype=np.float32) - 1).max(axis=-1)
                flags[f"not summing to 1 (±{SUM_TOLERANCE})"] = finite & (error > SUM_TOLERANCE)
            for what, bad in flags.items():
                found.setdefault(what, []).extend(labels[i] for i in np.flatnonzero(bad))
        problems += [
            f"{name}: {len(clips)} clip(s) {what}: {_examples(clips)}"
            for what, clips in found.items()
            if clips
        ]
    return problems


def _blocks(dataset: h5py.Dataset) -> Iterator[tuple[int, int, np.ndarray | None]]:
    """(start, stop, rows) over a dataset in bounded blocks. A block with a damaged chunk is
    re-read row by row so the damaged clip can be named; its rows come back as None."""
    row_bytes = dataset.dtype.itemsize * math.prod(dataset.shape[1:])
    step = max(1, _BLOCK_BYTES // max(1, row_bytes))
    for start in range(0, dataset.shape[0], step):
        stop = min(start + step, dataset.shape[0])
        try:
            block = dataset[start:stop]
        except OSError:
            for row in range(start, stop):
                try:
                    single = dataset[row : row + 1]
                except OSError:
                    single = None
                yield row, row + 1, single
        else:
            yield start, stop, block


# -- small helpers -------------------------------------------------------------------------
def _ids_digest(ids: list[str]) -> str:
    return hashlib.sha256(json.dumps(ids).encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    """Digest of a whole file, as ShardInfo records it."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's) data to disk before it is renamed into place."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        _fsync(path.parent)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise CacheError(path, f"could not write ({error})") from error
        raise


def _writer_alive(temporary: Path) -> bool:
    """Whether the process named in ``.<name>.<pid>.tmp`` still runs."""
    pid = temporary.name.rsplit(".", 2)[-2]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        pass
    return True


def _describe(shapes: dict[str, tuple[int, ...]]) -> str:
    return ", ".join(f"{name} {list(shape)}" for name, shape in shapes.items())


def _class_difference(cache: list[str], dataset: list[str]) -> str:
    if len(cache) != len(dataset):
        return f"the cache has {len(cache)} classes, the dataset {len(dataset)}"
    position = next(i for i, (a, b) in enumerate(zip(cache, dataset, strict=True)) if a != b)
    return (
        f"class {position} is {cache[position]!r} in the cache, {dataset[position]!r} "
        "in the dataset (same names in another order count as different)"
    )


def _examples(clip_ids: list[str]) -> str:
    shown = ", ".join(repr(clip_id) for clip_id in clip_ids[:_SHOWN])
    return shown + (f" and {len(clip_ids) - _SHOWN} more" if len(clip_ids) > _SHOWN else "")
