"""``index.json``: what a cache was made from and which shards make it up.

The index is written last and atomically, so its presence is what makes a folder a
cache: a folder without one is an unfinished extraction. It records each shard's size and
sha256 so a reader can tell a damaged or swapped shard, and the teacher, dataset and
settings the vectors came from so stage two can refuse a cache that does not fit.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipeline.cache.key import SCHEMA_VERSION
from pipeline.errors import CacheError
from pipeline.files import write_text

INDEX_FILE = "index.json"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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
    and ``fingerprint`` (what `list_caches` shows), ``settings`` holds ``resolution`` and
    ``layers`` (the 1-based teacher layers stored, in row order); ``skipped`` lists
    ``{"id", "reason"}`` for clips the teacher could not process.
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
        path = Path(directory) / INDEX_FILE
        try:
            write_text(path, json.dumps(self.to_json(), indent=2) + "\n")
        except OSError as error:
            raise CacheError(path, f"could not write ({error})") from error

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
