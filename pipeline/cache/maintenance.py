"""``tkd cache list`` and ``tkd cache gc``: what caches a root holds, and the temporaries
killed writers left behind.

Listing reads only each ``index.json`` (an unusable one is listed with its problem rather
than hidden, so a user can see and delete it). Garbage collection removes only what no
live process can still be writing: it takes the cache's lock without waiting and skips a
temporary whose writer, named by the pid in its file name, still runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.cache.index import INDEX_FILE, CacheIndex
from pipeline.cache.lock import cache_lock
from pipeline.errors import CacheError
from pipeline.files import temporary_owner_alive


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
        stale = [path for path in sorted(folder.glob(".*.tmp")) if not temporary_owner_alive(path)]
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
