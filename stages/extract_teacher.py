"""`tkd extract-teacher`: run the teacher once per clip and cache its temporal attention.

The cache folder is named by a key over the teacher's weights, the dataset and the
settings that change the records, so a stale cache is never served and the same inputs
always find theirs. Shards are written atomically; a rerun redoes only missing shards,
and a complete cache costs no teacher work at all.

``--views K`` runs the teacher on K views of every clip (view 0 as it is, views 1..K-1
augmented, drawn from (seed, clip id, view) by :mod:`pipeline.data.views`) and caches
each view's outputs and parameters; the key covers K, the seed and the augmentation
settings (K = 1 keeps the key of a cache without views). The in-event mass summary is
measured on view 0, the clips as they are, so it compares across K.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.attention_source import in_event_mass_report
from pipeline.cache import (
    SCHEMA_VERSION,
    CacheIndex,
    ShardInfo,
    TeacherCache,
    cache_key,
    cache_lock,
    read_shard_attrs,
    read_shard_ids,
)
from pipeline.data.manifest import Manifest
from pipeline.data.views import draw_views
from pipeline.errors import AudioError, CacheError, TkdError
from pipeline.files import file_sha256
from pipeline.progress import progress
from pipeline.teacher.extraction import ExtractionSettings, ShardJob, ShardResult, extract_shard
from pipeline.teacher.model import Teacher, teacher_fingerprint


@dataclass
class ExtractionResult:
    cache_dir: Path
    summary: dict


def plan_shards(manifest: Manifest, shard_size: int) -> list[ShardJob]:
    """Fixed shards in manifest order: shard i always holds the same clips."""
    clips = manifest.clips
    return [
        ShardJob(
            index, tuple(c.id for c in chunk), tuple(str(manifest.audio_path(c)) for c in chunk)
        )
        for index, start in enumerate(range(0, len(clips), shard_size))
        for chunk in [clips[start : start + shard_size]]
    ]


def _finished(job: ShardJob, directory: Path) -> ShardResult | None:
    """A shard already on disk and holding exactly this job's clips (minus recorded skips)."""
    path = directory / job.name
    if not path.is_file():
        return None
    try:
        ids, attrs = read_shard_ids(path), read_shard_attrs(path)
    except CacheError:
        path.unlink()  # unreadable leftovers are redone, never trusted
        return None
    skipped = attrs.get("skipped", [])
    if sorted(ids + [s["id"] for s in skipped]) != sorted(job.ids):
        path.unlink()
        return None
    return ShardResult(
        ShardInfo(job.name, len(ids), file_sha256(path), path.stat().st_size), skipped
    )


def _sample_rate(teacher: str) -> int:
    """The rate the teacher hears at, from its feature extractor's settings (no model load)."""
    path = Path(teacher) / "preprocessor_config.json"
    try:
        return int(json.loads(path.read_text())["sampling_rate"])
    except (OSError, ValueError, KeyError) as error:
        raise TkdError(f"{path}: cannot read the teacher's sampling rate ({error})") from None


def _refuse_missing_audio(manifest: Manifest) -> None:
    """Fail before any teacher work, not hours in, when audio files are gone."""
    missing = [clip for clip in manifest if not manifest.audio_path(clip).is_file()]
    if missing:
        more = f" ({len(missing)} clips' audio is missing in all)" if len(missing) > 1 else ""
        raise AudioError(
            manifest.audio_path(missing[0]),
            f"clip {missing[0].id!r}: audio file does not exist{more}; "
            "--skip-bad leaves such clips out",
        )


def _run_jobs(jobs, teacher, directory, settings, record, workers, scheduler, total_clips):
    """Run shard jobs in-process, or one dask task per shard on a cluster."""
    results: list[ShardResult] = []
    views = settings.views
    unit = "clip" if views == 1 else "view"
    with progress(total=total_clips * views, desc="extract-teacher", unit=unit) as bar:
        if not workers and not scheduler:
            for job in jobs:
                results.append(
                    extract_shard(job, teacher, str(directory), settings, record, bar.update)
                )
            return results
        from dask.distributed import Client, LocalCluster, as_completed

        cluster = (
            None
            if scheduler
            else LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            )
        )
        with Client(scheduler or cluster) as client:
            futures = [
                client.submit(
                    extract_shard,
                    job,
                    teacher,
                    str(directory),
                    settings,
                    record,
                    key=f"extract-{directory.name}-{job.name}",
                    pure=False,
                )
                for job in jobs
            ]
            for future in as_completed(futures):
                result = future.result()
                results.append(result)
                bar.update((result.info.clips + len(result.skipped)) * views)
        if cluster is not None:
            cluster.close()
    return results


@dataclass
class ExtractionPlan:
    """Where a cache for these inputs lives, and what decides it (computed without the teacher)."""

    manifest: Manifest
    teacher: str
    fingerprint: str
    model_type: str
    num_layers: int
    record: dict
    directory: Path


def plan_extraction(
    data: str | Path,
    teacher: str | Path,
    cache_root: str | Path = "cache",
    settings: ExtractionSettings | None = None,
) -> ExtractionPlan:
    """The cache key hashes the teacher's files, the dataset and the record settings."""
    settings = settings or ExtractionSettings()
    manifest = Manifest.load(data)
    teacher = str(Path(teacher).resolve())
    fingerprint = teacher_fingerprint(teacher)
    config = json.loads((Path(teacher) / "config.json").read_text())
    num_layers = config.get("num_hidden_layers") or config.get("encoder_layers")
    record = settings.record_settings(num_layers)
    parts = {
        "teacher": fingerprint,
        "data": manifest.fingerprint(),
        "settings": record,
        "skip_bad": settings.skip_bad,
    }
    directory = Path(cache_root) / cache_key(parts)
    return ExtractionPlan(
        manifest, teacher, fingerprint, config.get("model_type"), num_layers, record, directory
    )


def extract_teacher(
    data: str | Path,
    teacher: str | Path,
    cache_root: str | Path = "cache",
    settings: ExtractionSettings | None = None,
    shard_size: int = 256,
    workers: int = 0,
    scheduler: str | None = None,
) -> ExtractionResult:
    """Extract (or find) the teacher cache for ``data``; returns its folder and a summary."""
    started = time.time()
    settings = settings or ExtractionSettings()
    if shard_size < 1:
        raise TkdError(f"--shard-size must be at least 1, got {shard_size}")
    if workers < 0:
        raise TkdError(f"--workers must be 0 (in-process) or more, got {workers}")
    plan = plan_extraction(data, teacher, cache_root, settings)
    manifest, directory = plan.manifest, plan.directory
    if not settings.skip_bad:
        _refuse_missing_audio(manifest)
    directory.mkdir(parents=True, exist_ok=True)
    with cache_lock(directory):
        try:
            index = CacheIndex.load(directory)
            TeacherCache(directory).close()
            summary = {**index.stats, "reused": True, "seconds": round(time.time() - started, 2)}
            return ExtractionResult(directory, summary)
        except CacheError:
            pass
        jobs = plan_shards(manifest, shard_size)
        done = {job.index: _finished(job, directory) for job in jobs}
        todo = [job for job in jobs if done[job.index] is None]
        if settings.views > 1 and todo:
            views = draw_views(
                manifest,
                settings.views,
                settings.view_seed,
                settings.augment,
                _sample_rate(plan.teacher),
            )
            todo = [replace(job, views=tuple(views[i] for i in job.ids)) for job in todo]
        fresh = _run_jobs(
            todo,
            plan.teacher,
            directory,
            settings,
            plan.record,
            workers,
            scheduler,
            sum(len(job.ids) for job in todo),
        )
        results = sorted(
            [r for r in done.values() if r is not None] + fresh, key=lambda r: r.info.name
        )
        teacher_seconds = time.time() - started
        index = CacheIndex(
            schema=SCHEMA_VERSION,
            key=directory.name,
            teacher={
                "path": plan.teacher,
                "fingerprint": plan.fingerprint,
                "model_type": plan.model_type,
                "num_layers": plan.num_layers,
                "reduction": Teacher.reduction,
            },
            data={
                "root": str(manifest.root.resolve()),
                "fingerprint": manifest.fingerprint(),
                "clips": len(manifest),
            },
            settings={**plan.record, "shard_size": shard_size},
            classes=list(manifest.labels.names),
            multi_label=manifest.labels.multi_label,
            shards=[r.info for r in results],
            skipped=[s for r in results for s in r.skipped],
        )
        index.save(directory)  # written last: the cache is complete from here on
        clips_done = sum(len(job.ids) for job in todo)
        with TeacherCache(directory) as cache:
            index.stats = {
                "clips": index.clip_count,
                "shards": len(results),
                "shards_written": len(fresh),
                "shards_reused": len(results) - len(fresh),
                "seconds": round(teacher_seconds, 2),
                "clips_per_second": round(clips_done / teacher_seconds, 2) if clips_done else None,
                "bytes": sum(r.info.bytes for r in results),
                "skipped": len(index.skipped),
                "in_event_mass": in_event_mass_report(cache, manifest),
            }
        index.save(directory)
    return ExtractionResult(directory, {**index.stats, "reused": False})
