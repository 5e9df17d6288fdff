"""``tkd cache verify``: read every byte of a cache and name everything wrong with it.

The reader only checks layout when it opens a cache (reading every vector would cost as
much as the training run it serves), so a full check is its own job: sha256 of every
shard against the index, HDF5 chunk checksums, finite values and distributions that sum
to 1, and clip ids held by one shard only. It reports, one line per problem, and never
raises for a damaged cache: a report is what its caller wants.
"""

from __future__ import annotations

from pathlib import Path

import h5py

from pipeline.cache.index import CacheIndex, ShardInfo
from pipeline.cache.shard import check_values, examples, inspect_shard
from pipeline.errors import CacheError
from pipeline.files import file_sha256


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
            f"{len(duplicates)} clip id(s) in more than one shard: {examples(duplicates)}"
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
            ids, found = inspect_shard(file, classes)
            problems += found
            if len(ids) != info.clips:
                problems.append(f"holds {len(ids)} clips, index.json records {info.clips}")
            problems += check_values(file, ids)
    except OSError as error:
        return [], [*problems, f"unreadable ({error})"]
    return ids, problems
