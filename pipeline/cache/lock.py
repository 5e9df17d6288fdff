"""One writer per cache: an advisory lock on ``<cache>/.lock``.

Two extractions of one key (two terminals, two cluster jobs) would otherwise write the
same shards at once. flock is tied to the open descriptor, so the kernel releases it when
the holder dies and no lock is ever stale; the holder's pid is written into the file only
so that a refusal can name who holds it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import CacheError

LOCK_FILE = ".lock"


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
