"""Cache naming: the folder of a cache is a hash of everything its content depends on.

Kept apart from reading and writing because the key is the cache's whole staleness
guarantee: equal inputs (teacher, dataset, record settings) must find the same folder and
any change, including a new on-disk schema, must give another, so stage two can never be
served vectors of an older teacher or dataset.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_VERSION = 1


def cache_key(parts: dict[str, Any]) -> str:
    """Folder name for a cache: equal parts give the same key whatever the dict order,
    and any change (or a new schema) gives another, so caches never go stale silently."""
    text = json.dumps(
        {"schema": SCHEMA_VERSION, "parts": parts},
        sort_keys=True,
        separators=(",", ":"),
        allow_nan=False,
        default=jsonable,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.h5"


def jsonable(value: Any) -> Any:
    """JSON form of the few non-JSON values settings hold; anything else is refused."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cache settings must be JSON values, not {type(value).__name__}")
