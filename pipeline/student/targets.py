"""The teacher's targets a student run distils from: one attention source's vectors and
the logits, per (clip, view).

They are loaded into memory once when they fit a budget (a few MB for the datasets here),
so a training batch costs two tensor lookups instead of two HDF5 reads per item; past the
budget they are read by clip id from the shards, as before. Both give the same batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pipeline.cache import TeacherCache

DEFAULT_TARGET_MEMORY_MB = 512
_MB = 2**20


class TeacherTargets:
    """``batch(clip_ids, views)``: [B, R] attention vectors and [B, C] logits."""

    def __init__(
        self,
        cache: TeacherCache,
        source: str,
        clip_ids: Sequence[str],
        views: int = 1,
        memory_mb: float = DEFAULT_TARGET_MEMORY_MB,
    ):
        cache.row_of(source)  # a teacher layer the cache lacks: refused now
        self.cache, self.source, self.views = cache, source, views
        self.nbytes = len(clip_ids) * views * (cache.resolution + len(cache.classes)) * 4
        self.in_memory = self.nbytes <= memory_mb * _MB
        if self.in_memory:
            vectors, logits = cache.targets(source, clip_ids, views)
            self._rows = {clip_id: row for row, clip_id in enumerate(clip_ids)}
            self._vectors, self._logits = torch.from_numpy(vectors), torch.from_numpy(logits)

    @property
    def mode(self) -> str:
        """``memory`` or ``streamed``, recorded in a run's config.json."""
        return "memory" if self.in_memory else "streamed"

    def batch(
        self, clip_ids: Sequence[str], views: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.in_memory:
            rows = torch.tensor([self._rows[clip_id] for clip_id in clip_ids])
            picked = torch.tensor(list(views))
            return self._vectors[rows, picked], self._logits[rows, picked]
        pairs = list(zip(clip_ids, views, strict=True))
        return (
            torch.stack([torch.from_numpy(self.cache.vector(c, self.source, v)) for c, v in pairs]),
            torch.stack([torch.from_numpy(self.cache.logits(c, v)) for c, v in pairs]),
        )
