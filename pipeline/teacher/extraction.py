"""Stage one's unit of work: one shard of clips through the teacher, reduced on the device.

A shard job is plain data (picklable), so the same function runs in-process or as a task
on a ``dask.distributed`` worker; each process loads the teacher once and keeps it.
Full T×T maps stay on the device: only R-bin vectors (and optional R×R maps) reach the host.
With ``views`` K > 1 the job carries each clip's K views (:mod:`pipeline.data.views`) and
the teacher runs on every one; the shard then holds [N, K, ...] arrays and the views'
parameters (:mod:`pipeline.cache.writer`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from pipeline.cache import ShardInfo, shard_name, write_shard
from pipeline.data.audio import load_audio
from pipeline.data.augment import ViewSettings
from pipeline.data.views import ViewSource
from pipeline.errors import AudioError, TkdError
from pipeline.teacher.attention import (
    maps_to_resolution,
    received_attention,
    rollout_vectors,
)
from pipeline.teacher.model import Teacher
from pipeline.temporal import to_resolution


@dataclass(frozen=True)
class ExtractionSettings:
    """What stage one computes (``record_settings``, part of the cache key) and how it runs."""

    resolution: int = 100
    layers: tuple[int, ...] | None = None  # 1-based teacher layers to store; None: all
    store_maps: bool = False
    batch_size: int = 8
    device: str = "cpu"
    skip_bad: bool = False
    views: int = 1  # view 0 is the clip as it is; views 1.. are augmented (`augment`)
    augment: ViewSettings = ViewSettings()
    view_seed: int = 0

    def __post_init__(self) -> None:
        if self.resolution < 1:
            raise TkdError(f"--resolution must be at least 1, got {self.resolution}")
        if self.batch_size < 1:
            raise TkdError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.views < 1:
            raise TkdError(f"--views must be at least 1, got {self.views}")
        if self.views > 1 and not self.augment.augment:
            raise TkdError(f"--views {self.views} needs at least one augmentation (--augment)")

    def record_settings(self, num_layers: int) -> dict:
        """The settings that change what is stored (batch size and device do not)."""
        layers = list(self.layers) if self.layers else list(range(1, num_layers + 1))
        if min(layers) < 1 or max(layers) > num_layers:
            raise TkdError(f"--layers {layers} out of range: the teacher has {num_layers} layers")
        record = {"resolution": self.resolution, "layers": layers, "store_maps": self.store_maps}
        if self.views == 1:  # exactly the settings (and so the key) of caches without views
            return record
        return {
            **record,
            "views": self.views,
            "view_seed": self.view_seed,
            "augment": self.augment.to_json(),
        }


@dataclass(frozen=True)
class ShardJob:
    index: int
    ids: tuple[str, ...]
    paths: tuple[str, ...]
    views: tuple[tuple[ViewSource, ...], ...] = ()  # per clip, views 0..K-1; () when K = 1

    @property
    def name(self) -> str:
        return shard_name(self.index)


@dataclass
class ShardResult:
    info: ShardInfo
    skipped: list[dict] = field(default_factory=list)


@lru_cache(maxsize=2)
def cached_teacher(directory: str, device: str) -> Teacher:
    """One loaded teacher per process (and worker), however many shards it handles."""
    return Teacher.load(directory, device)


def _load_waves(job: ShardJob, teacher: Teacher, skip_bad: bool) -> tuple[list, list[dict]]:
    """The job's clips as (clip id, view, waveform) the teacher takes whole, views in
    order; a clip with an unreadable file (its own, a partner's or a noise file) raises
    :class:`AudioError` naming clip and file, or is listed as skipped (``skip_bad``)."""
    waves, skipped = [], []
    for position, (clip_id, path) in enumerate(zip(job.ids, job.paths)):
        try:
            if job.views:
                views = [source.wave(teacher.sample_rate) for source in job.views[position]]
            else:
                views = [load_audio(path, teacher.sample_rate)]
            for wave in views:
                problem = teacher.length_problem(len(wave))
                if problem:
                    raise AudioError(path, problem)
            waves += [(clip_id, view, wave) for view, wave in enumerate(views)]
        except AudioError as error:
            if not skip_bad:
                raise AudioError(error.path, f"clip {clip_id!r}: {error.problem}") from None
            skipped.append({"id": clip_id, "path": str(error.path), "problem": error.problem})
    return waves, skipped


def extract_shard(
    job: ShardJob,
    teacher_dir: str,
    cache_dir: str,
    settings: ExtractionSettings,
    record_settings: dict,
    progress=None,
) -> ShardResult:
    """Run the teacher over one shard's clips (every view of each) and write the shard
    atomically; ``progress`` counts teacher inputs (clip views)."""
    teacher = cached_teacher(teacher_dir, settings.device)
    waves, skipped = _load_waves(job, teacher, settings.skip_bad)
    keep = torch.tensor([layer - 1 for layer in record_settings["layers"]])
    resolution = settings.resolution
    rows: dict[tuple[str, int], tuple] = {}
    by_length = sorted(waves, key=lambda item: len(item[2]))  # less padding per batch
    for start in range(0, len(by_length), settings.batch_size):
        batch = by_length[start : start + settings.batch_size]
        try:
            output = teacher.attend([wave for _, _, wave in batch])
        except torch.OutOfMemoryError:
            longest = max(len(wave) for _, _, wave in batch) / teacher.sample_rate
            raise TkdError(
                f"{job.name}: out of device memory on {len(batch)} clip(s) of up to "
                f"{longest:.1f} s ({', '.join(clip_id for clip_id, _, _ in batch[:3])}...); "
                "lower --batch-size, or leave clips this long out"
            ) from None
        keep_device = keep.to(output.maps.device)
        rollout = to_resolution(
            rollout_vectors(output.maps, output.frames, teacher.reduction),
            output.frames,
            resolution,
        )
        attention = to_resolution(
            received_attention(output.maps, output.frames), output.frames, resolution
        )
        maps = None
        if settings.store_maps:
            maps = (
                maps_to_resolution(output.maps[:, keep_device], output.frames, resolution)
                .half()
                .cpu()
                .numpy()
            )
        rollout = rollout[:, keep_device].cpu().numpy()
        attention = attention[:, keep_device].cpu().numpy()
        logits = output.logits.cpu().numpy()
        for i, (clip_id, view, _) in enumerate(batch):
            rows[clip_id, view] = (
                rollout[i],
                attention[i],
                logits[i],
                None if maps is None else maps[i],
            )
        if progress is not None:
            progress(len(batch))
    ids = list(dict.fromkeys(clip_id for clip_id, _, _ in waves))  # manifest order
    views = settings.views
    lead = (0,) if views == 1 else (0, views)
    empty = [(*lead, len(keep), resolution)] * 2 + [(*lead, len(teacher.classes))]

    def stacked(k: int) -> np.ndarray:
        if not ids:
            return np.zeros(empty[k])
        if views == 1:
            return np.stack([rows[i, 0][k] for i in ids])
        return np.stack([np.stack([rows[i, v][k] for v in range(views)]) for i in ids])

    attrs = {
        **record_settings,
        "teacher": teacher_dir,
        "reduction": teacher.reduction,
        "classes": teacher.classes,
        "skipped": skipped,
    }
    sources = dict(zip(job.ids, job.views))
    params = [[s.params.to_json() for s in sources[i]] for i in ids] if views > 1 else None
    info = write_shard(
        Path(cache_dir) / job.name,
        ids,
        stacked(0),
        stacked(1),
        stacked(2),
        stacked(3) if settings.store_maps and ids else None,
        attrs,
        params=params,
    )
    return ShardResult(info, skipped)
