"""The one error family tkd raises for bad input, so callers (and the CLI) can tell
a user's mistake from a bug and print one clear line instead of a traceback."""

from __future__ import annotations

from pathlib import Path


class TkdError(Exception):
    """Base class: a problem with the user's input, stated in one line."""


class LocatedError(TkdError):
    """An error about one file: the message always names the file first."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):
        """Survive pickling (DataLoader workers, dask tasks) with path and problem intact."""
        return (type(self), (self.path, self.problem))


class AudioError(LocatedError):
    """An audio file that cannot be used (missing, empty, unreadable, non-finite)."""


class ManifestError(LocatedError):
    """A dataset folder whose manifest or label list is malformed or inconsistent."""


class CacheError(LocatedError):
    """A teacher cache that is incomplete, corrupt, or does not match what is asked of it."""


class CheckpointError(LocatedError):
    """A model folder (teacher or student run) that is missing or incomplete."""
