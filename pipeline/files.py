"""Atomic file writes: the one way tkd puts a file in place.

Every file a later step trusts (manifests, labels, cache shards and ``index.json``,
checkpoints, features, results, exports) is written to a temporary name beside its
destination, flushed to disk, renamed over the destination and its folder flushed, so a
crash, ``kill -9`` or full disk leaves either the old file or the new one, never half of
one. Temporaries are named ``.<name>.<pid>.tmp`` so a cleaner can tell whether the writer
still runs (see ``temporary_owner_alive``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


def temporary_path(path: Path) -> Path:
    """The temporary a writer of ``path`` in this process uses."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def temporary_owner_alive(temporary: Path) -> bool:
    """Whether the process named in a ``.<name>.<pid>.tmp`` file still runs."""
    try:
        pid = int(temporary.name.rsplit(".", 2)[-2])
    except (IndexError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fsync_path(path: Path) -> None:
    """Flush a file's (or a folder's) data to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is flushed and renamed to ``path``.

    On any error the temporary is removed and ``path`` is left as it was. Code that must
    check what it wrote (cache shards re-open theirs) does so inside the block.
    """
    path = Path(path)
    temporary = temporary_path(path)
    try:
        yield temporary
        fsync_path(temporary)
        os.replace(temporary, path)
        fsync_path(path.parent)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> None:
    """``write(temporary)`` then put the result in place atomically."""
    with replacing(path) as temporary:
        write(temporary)


def write_text(path: str | Path, text: str) -> None:
    """Atomic text write (UTF-8)."""
    write_atomic(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, data: Any) -> None:
    """Atomic JSON write: an interrupted run never leaves half a results file."""
    write_text(path, json.dumps(data, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def file_sha256(path: str | Path) -> str:
    """sha256 of a whole file, read in 4 MB blocks (shards, checkpoints, pretrained weights)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()
