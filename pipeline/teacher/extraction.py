"""Stage one's unit of work: one shard of clips through the teacher, reduced on the device.

A shard job is plain data (picklable), so the same function runs in-process or as a task
on a ``dask.distributed`` worker; each process loads the teacher once and keeps it.
Full T×T maps stay on the device: only R-bin vectors (and optional R×R maps) reach the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from pipeline.cache import ShardInfo, shard_name, write_shard
from pipeline.data.audio import load_audio
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

    def __post_init__(self) -> None:
        if self.resolution < 1:
            raise TkdError(f"--resolution must be at least 1, got {self.resolution}")
        if self.batch_size < 1:
            raise TkdError(f"--batch-size must be at least 1, got {self.batch_size}")

    def record_settings(self, num_layers: int) -> dict:
        """The settings that change what is stored (batch size and device do not)."""
        layers = list(self.layers) if self.layers else list(range(1, num_layers + 1))
        if min(layers) < 1 or max(layers) > num_layers:
            raise TkdError(f"--layers {layers} out of range: the teacher has {num_layers} layers")
        return {"resolution": self.resolution, "layers": layers, "store_maps": self.store_maps}


@dataclass(frozen=True)
class ShardJob:
    index: int
    ids: tuple[str, ...]
    paths: tuple[str, ...]

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
    """The job's clips as waveforms the teacher takes whole; the others raise
    :class:`AudioError` naming clip and file, or are listed as skipped (``skip_bad``)."""
    waves, skipped = [], []
    for clip_id, path in zip(job.ids, job.paths):
        try:
            wave = load_audio(path, teacher.sample_rate)
            problem = teacher.length_problem(len(wave))
            if problem:
                raise AudioError(path, problem)
            waves.append((clip_id, wave))
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
    """Run the teacher over one shard's clips and write the shard atomically."""
    teacher = cached_teacher(teacher_dir, settings.device)
    waves, skipped = _load_waves(job, teacher, settings.skip_bad)
    keep = torch.tensor([layer - 1 for layer in record_settings["layers"]])
    resolution = settings.resolution
    rows: dict[str, tuple] = {}
    by_length = sorted(waves, key=lambda item: len(item[1]))  # less padding per batch
    for start in range(0, len(by_length), settings.batch_size):
        batch = by_length[start : start + settings.batch_size]
        try:
            output = teacher.attend([wave for _, wave in batch])
        except torch.OutOfMemoryError:
            longest = max(len(wave) for _, wave in batch) / teacher.sample_rate
            raise TkdError(
                f"{job.name}: out of device memory on {len(batch)} clip(s) of up to "
                f"{longest:.1f} s ({', '.join(clip_id for clip_id, _ in batch[:3])}...); "
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
        for i, (clip_id, _) in enumerate(batch):
            rows[clip_id] = (rollout[i], attention[i], logits[i], None if maps is None else maps[i])
        if progress is not None:
            progress(len(batch))
    ids = [clip_id for clip_id, _ in waves]  # manifest order, not batch order
    empty = [(0, len(keep), resolution), (0, len(keep), resolution), (0, len(teacher.classes))]
    stacked = [np.stack([rows[i][k] for i in ids]) if ids else np.zeros(empty[k]) for k in range(3)]
    attrs = {
        **record_settings,
        "teacher": teacher_dir,
        "reduction": teacher.reduction,
        "classes": teacher.classes,
        "skipped": skipped,
    }
    info = write_shard(
        Path(cache_dir) / job.name,
        ids,
        stacked[0],
        stacked[1],
        stacked[2],
        np.stack([rows[i][3] for i in ids]) if settings.store_maps and ids else None,
        attrs,
    )
    return ShardResult(info, skipped)
