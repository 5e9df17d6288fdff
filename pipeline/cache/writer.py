"""Writing shards: each one either exists complete and verified, or not at all.

Arrays are chunked one clip per chunk, byte-shuffled and lzf-compressed, and checksummed
(fletcher32), so a flipped bit surfaces as an error on read instead of a wrong target.
Measured here on 24-layer float16 vectors, random single-clip reads: lzf reads 1.1-3x
faster than gzip level 4 (one [24, 400] chunk 103-191 us against 145-205 us; [24, 50] 19
against 57 us) for files 6-18 % larger. Both shrink rollout-like vectors by 40-70 %
against raw storage (which reads in ~20 us), but only by 1-10 % when the vectors are
noise-like. A shard is written to ``.<name>.<pid>.tmp``, re-opened and checked, then
renamed into place (`pipeline.files.replacing`); a resumed extraction reads back the ids
and settings of the shards already there.

Views (``--views K``, K > 1): every array gains a view axis after the clip axis
(``rollout``/``attention`` [N, K, layers, R], ``logits`` [N, K, C], ``maps``
[N, K, layers, R, R]), chunked one (clip, view) per chunk so reading one view costs what
reading one clip costs without views, and ``params`` [N, K] holds each view's
:class:`~pipeline.data.augment.ViewParams` as UTF-8 JSON in fixed-width bytes (chunked and
fletcher32-checked like the arrays: a damaged parameter fails on read, never replays a
wrong view). View 0 is the clip as it is. K = 1 writes exactly the layout without views.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pipeline.cache.index import ShardInfo
from pipeline.cache.key import SCHEMA_VERSION, jsonable
from pipeline.cache.shard import check_values, ids_digest, inspect_shard, read_ids
from pipeline.errors import CacheError
from pipeline.files import file_sha256, replacing

_FILTERS: dict[str, Any] = {"compression": "lzf", "shuffle": True, "fletcher32": True}


def write_shard(
    path: str | Path,
    ids: list[str],
    rollout: np.ndarray,
    attention: np.ndarray,
    logits: np.ndarray,
    maps: np.ndarray | None,
    attrs: dict[str, Any],
    params: list[list[dict[str, Any]]] | None = None,
) -> ShardInfo:
    """Write one shard so that it either exists complete and verified, or not at all.

    ``rollout`` and ``attention`` are [N, layers, R] rows that each sum to 1, ``logits``
    [N, C], ``maps`` [N, layers, R, R] or None; with views, [N, K, ...] each and
    ``params`` [N][K] the views' parameters (JSON objects). ``attrs`` (the settings) is
    stored as JSON. N may be 0, so a job whose clips were all skipped can still be
    recorded as done.
    """
    path, ids = Path(path), list(ids)
    try:
        with replacing(path) as temporary:
            arrays = _stored_types(rollout, attention, logits, maps)
            _write(temporary, ids, arrays, attrs, params)
            with h5py.File(temporary, "r") as file:
                written, problems = inspect_shard(file, classes=None)
                if written != ids:
                    problems.append("clip ids read back differ from those written")
                problems += check_values(file, written)
            if problems:
                raise CacheError(path, "refused to write: " + "; ".join(problems))
            info = ShardInfo(path.name, len(ids), file_sha256(temporary), temporary.stat().st_size)
        return info
    except (OSError, ValueError, TypeError) as error:
        raise CacheError(path, f"could not write: {error}") from error


def _stored_types(
    rollout: np.ndarray, attention: np.ndarray, logits: np.ndarray, maps: np.ndarray | None
) -> dict[str, np.ndarray]:
    """The arrays as stored: attention in float16 (vectors summing to 1 lose nothing a
    student can use), logits in float32."""
    arrays = {
        "rollout": np.asarray(rollout, dtype=np.float16),
        "attention": np.asarray(attention, dtype=np.float16),
        "logits": np.asarray(logits, dtype=np.float32),
    }
    if maps is not None:
        arrays["maps"] = np.asarray(maps, dtype=np.float16)
    return arrays


def _write(
    temporary: Path,
    ids: list[str],
    arrays: dict[str, np.ndarray],
    attrs: dict[str, Any],
    params: list[list[dict[str, Any]]] | None,
) -> None:
    views = 1 if params is None else arrays["logits"].shape[1]
    with h5py.File(temporary, "w") as file:
        file.create_dataset("ids", data=ids, dtype=h5py.string_dtype("utf-8"))
        for name, array in arrays.items():
            tail = array.shape[1:]  # unlimited rows, so an empty shard takes (1, ...) chunks
            chunk = tail if params is None else (1, *tail[1:])  # one (clip, view) per chunk
            file.create_dataset(
                name, data=array, chunks=(1, *chunk), maxshape=(None, *tail), **_FILTERS
            )
        if params is not None:
            text = [[json.dumps(view, sort_keys=True).encode() for view in row] for row in params]
            width = max((len(item) for row in text for item in row), default=1)
            encoded = np.array(text, dtype=f"S{width}").reshape(len(text), views)
            file.create_dataset(
                "params", data=encoded, chunks=(1, views), maxshape=(None, views), **_FILTERS
            )
        file.attrs["schema"] = SCHEMA_VERSION
        file.attrs["settings"] = json.dumps(attrs, sort_keys=True, default=jsonable)
        file.attrs["ids_sha256"] = ids_digest(ids)


def read_shard_ids(path: str | Path) -> list[str]:
    """Clip ids a shard holds: how a resumed extraction knows what is already done."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as file:
            return read_ids(file)
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
