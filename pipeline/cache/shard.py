"""What a sound shard is: its datasets, their shapes, and values that are distributions.

One HDF5 shard keys its rows by clip id (the ``ids`` dataset, guarded by a digest since
the string heap has no HDF5 checksum), never by row order. The writer runs these checks
on what it just wrote, the reader on every shard it opens (layout only, no vectors) and
``verify`` on every byte, so the three can never disagree about what counts as damage.
A shard with views (``pipeline.cache.writer``) has a view axis after the clip axis and a
``params`` dataset, checked to hold each (clip, view)'s own parameters.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator

import h5py
import numpy as np

from pipeline.cache.key import SCHEMA_VERSION

REQUIRED_DATASETS = ("ids", "rollout", "attention", "logits")
ARRAYS = ("rollout", "attention", "logits", "maps")
VECTORS = ("rollout", "attention")
# float16 rounds each probability by at most 2**-11 of itself, so a sum of them drifts by at
# most ~4.9e-4 from the float32 sum; twice that still catches any real normalisation bug.
SUM_TOLERANCE = 1e-3
_BLOCK_BYTES = 1 << 26  # verification reads this much at a time, so huge `maps` fit in memory
_SHOWN = 3  # example clip ids quoted in a message


def inspect_shard(file: h5py.File, classes: int | None) -> tuple[list[str], list[str]]:
    """Clip ids and layout problems of an open shard, reading no vectors."""
    missing = [name for name in REQUIRED_DATASETS if name not in file]
    if missing:
        return [], [f"missing dataset(s) {', '.join(missing)}"]
    problems = []
    try:
        ids = read_ids(file)
    except (OSError, ValueError) as error:
        ids, problems = [], [f"clip ids unreadable ({error})"]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        repeated = [clip_id for clip_id in ids if clip_id in seen or seen.add(clip_id)]
        problems.append(f"duplicate clip id(s) {examples(repeated)}")
    count = file["ids"].shape[0]
    rollout = file["rollout"].shape
    views = rollout[1:2] if len(rollout) == 4 else ()  # (K,) with views, () without
    layout = f"[{count}, {'K, ' if views else ''}layers, R]"
    if len(rollout) not in (3, 4) or rollout[0] != count or 0 in rollout[1:]:
        problems.append(f"rollout has shape {list(rollout)}, expected {layout}")
    elif file["attention"].shape != rollout:
        problems.append(
            f"attention has shape {list(file['attention'].shape)}, rollout {list(rollout)}"
        )
    logits = file["logits"].shape
    if logits[:-1] != (count, *views) or (classes is not None and logits[-1] != classes):
        lead = ", ".join(map(str, (count, *views)))
        expected = f"[{lead}, {classes if classes is not None else 'C'}]"
        problems.append(f"logits have shape {list(logits)}, expected {expected}")
    if "maps" in file and len(rollout) >= 3 and file["maps"].shape != (*rollout, rollout[-1]):
        problems.append(
            f"maps have shape {list(file['maps'].shape)}, expected {[*rollout, rollout[-1]]}"
        )
    params = file["params"].shape if "params" in file else None
    if views and params != (count, *views):
        problems.append(f"params have shape {params and list(params)}, expected {[count, *views]}")
    elif not views and params is not None:
        problems.append("params stored without a view axis on the arrays")
    if file.attrs.get("schema") != SCHEMA_VERSION:
        problems.append(f"schema {file.attrs.get('schema')!r}, expected {SCHEMA_VERSION}")
    return ids, problems


def read_ids(file: h5py.File) -> list[str]:
    """Clip ids, checked against their digest: the vlen string heap has no HDF5 checksum."""
    ids = [str(clip_id) for clip_id in file["ids"].asstr()[()]]
    if file.attrs.get("ids_sha256") != ids_digest(ids):
        raise ValueError("clip ids do not match their recorded checksum")
    return ids


def check_values(file: h5py.File, ids: list[str]) -> list[str]:
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
                error = np.abs(block.sum(axis=-1, dtype=np.float32) - 1).reshape(len(block), -1)
                error = error.max(axis=1)
                flags[f"not summing to 1 (±{SUM_TOLERANCE})"] = finite & (error > SUM_TOLERANCE)
            for what, bad in flags.items():
                found.setdefault(what, []).extend(labels[i] for i in np.flatnonzero(bad))
        problems += [
            f"{name}: {len(clips)} clip(s) {what}: {examples(clips)}"
            for what, clips in found.items()
            if clips
        ]
    if "params" in file:
        problems += _check_params(file["params"], ids)
    return problems


def _check_params(dataset: h5py.Dataset, ids: list[str]) -> list[str]:
    """Views' parameters that cannot be read or are not those of their (clip, view)."""
    bad: list[str] = []
    for start, stop, block in _blocks(dataset):
        for row in range(start, stop):
            label = ids[row] if row < len(ids) else f"row {row}"
            try:
                views = [json.loads(item) for item in block[row - start]]
                if any(v["clip_id"] != label or v["view"] != k for k, v in enumerate(views)):
                    bad.append(label)
            except (TypeError, ValueError, KeyError):  # None block: a damaged chunk
                bad.append(label)
    if not bad:
        return []
    return [f"params: {len(bad)} clip(s) unreadable or not their own views': {examples(bad)}"]


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


def ids_digest(ids: list[str]) -> str:
    return hashlib.sha256(json.dumps(ids).encode()).hexdigest()


def examples(clip_ids: list[str]) -> str:
    """A few clip ids for a message, and how many more there are."""
    shown = ", ".join(repr(clip_id) for clip_id in clip_ids[:_SHOWN])
    return shown + (f" and {len(clip_ids) - _SHOWN} more" if len(clip_ids) > _SHOWN else "")
