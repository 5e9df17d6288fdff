"""`tkd cache list|verify|gc`: look after teacher caches."""

from __future__ import annotations

from pipeline.cache import collect_garbage, list_caches, verify_cache

__all__ = ["collect_garbage", "list_caches", "verify_cache", "human_size"]


def human_size(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024:
            return f"{count:.0f} {unit}"
        count /= 1024
    return f"{count:.1f} TB"
