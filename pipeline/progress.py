"""Progress reporting: a live bar on a terminal, two lines per stage in a log.

A tqdm bar redraws itself by writing a line per update, so a log (``make demo > log``,
CI) fills with thousands of them. When the stream is not a terminal, ``progress`` prints
one line when a stage starts and one when it ends instead. ``TQDM_DISABLE=1`` (the tests)
silences both.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

from tqdm import tqdm


def progress(
    iterable: Iterable | None = None,
    *,
    desc: str,
    total: int | None = None,
    unit: str = "it",
    leave: bool = True,
    stream: IO[str] | None = None,
) -> tqdm | Lines:
    """A tqdm bar on a terminal, else `Lines`; both iterate, ``update``, ``set_postfix``
    and close on ``with`` exit."""
    stream = stream or sys.stderr
    if stream.isatty():
        return tqdm(
            iterable,
            desc=desc,
            total=total,
            unit=unit,
            leave=leave,
            file=stream,
            disable=silenced(),
        )
    return Lines(iterable, desc=desc, total=total, unit=unit, stream=stream)


def silenced() -> bool:
    """``TQDM_DISABLE`` read at each call (tqdm itself reads it once, at import)."""
    return os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")


class Lines:
    """The log-friendly stand-in for a tqdm bar: a line at start, a line at close."""

    def __init__(
        self,
        iterable: Iterable | None,
        *,
        desc: str,
        total: int | None,
        unit: str,
        stream: IO[str],
    ) -> None:
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.desc, self.total, self.unit = iterable, desc, total, unit
        self.stream, self.count, self.postfix = stream, 0, ""
        self.silent = silenced()
        self.started, self.closed = time.monotonic(), False
        size = f" {self.total} {unit}" if self.total is not None else ""
        self._say(f"{desc}:{size} started")

    def __iter__(self) -> Iterator[Any]:
        try:
            for item in self.iterable or ():
                yield item
                self.count += 1
        finally:
            self.close()

    def update(self, n: int = 1) -> None:
        self.count += n

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{name}={value}" for name, value in values.items())

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        seconds = time.monotonic() - self.started
        postfix = f" ({self.postfix})" if self.postfix else ""
        self._say(f"{self.desc}: {self.count} {self.unit} in {seconds:.1f} s{postfix}")

    def __enter__(self) -> Lines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _say(self, line: str) -> None:
        if not self.silent:
            print(line, file=self.stream, flush=True)
