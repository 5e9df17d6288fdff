"""What every recipe shares: input checks, the bad-file policy, stable ids and seeds, and
running per-clip jobs in worker processes. The noisy mixer is in
:mod:`pipeline.data.recipes.noisy`.

Bad-file policy: a missing root folder or metadata file raises :class:`ManifestError`
naming it. Each referenced audio file is probed; by default every unusable file is
reported (a warning line and ``out/skipped.json``) and the rest are written; with
``strict=True`` any bad file refuses the whole dataset and nothing is written. The
manifest is written once, at the end, atomically: never half a dataset.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import soundfile

from pipeline.data.audio import truncation_problem
from pipeline.data.manifest import Clip, LabelSet, Manifest
from pipeline.errors import AudioError, ManifestError
from pipeline.files import write_json
from pipeline.progress import progress

log = logging.getLogger(__name__)

SKIPPED_FILE = "skipped.json"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
STRICT_LISTED = 10  # bad files named in a strict refusal; skipped.json lists them all


# -- inputs ---------------------------------------------------------------------------
def require_dir(path: Path, what: str) -> Path:
    """Fail early, naming the folder, rather than writing an empty dataset."""
    if not path.is_dir():
        raise ManifestError(path, f"{what} folder does not exist")
    return path


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ManifestError(path, f"{what} file does not exist")
    return path


def read_rows(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """CSV rows as dicts, refusing a file that lacks the columns we read."""
    with require_file(path, "metadata").open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in columns if column not in (reader.fieldnames or ())]
        if missing:
            raise ManifestError(path, f"missing column(s) {', '.join(missing)}")
        return list(reader)


@dataclass(frozen=True)
class Source:
    """A recording a recipe wants to use, before its audio has been checked."""

    id: str
    path: Path
    labels: tuple[str, ...]
    split: str
    speaker: str | None = None


@dataclass(frozen=True)
class Skipped:
    """An unusable file left out of the dataset, and why."""

    id: str
    path: str
    problem: str


def probe_audio(path: Path) -> float:
    """Duration in seconds from the header, raising :class:`AudioError` as ``load_audio``
    would for a missing, empty or undecodable file; reading no samples keeps it fast."""
    if not path.is_file():
        raise AudioError(path, "audio file does not exist")
    if path.stat().st_size == 0:
        raise AudioError(path, "audio file is empty (0 bytes)")
    try:
        info = soundfile.info(str(path))
    except (soundfile.SoundFileError, RuntimeError, TypeError, ValueError, OSError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else "unknown error"
        raise AudioError(path, f"cannot be decoded as audio ({message})") from None
    truncated = truncation_problem(info.extra_info)
    if truncated:
        raise AudioError(path, truncated)
    if info.frames <= 0:
        raise AudioError(path, "holds no samples")
    return info.frames / info.samplerate


def probe_sources(
    sources: Iterable[Source], desc: str
) -> tuple[list[tuple[Source, float]], list[Skipped]]:
    """Split sources into (usable, duration) pairs and skipped files."""
    usable: list[tuple[Source, float]] = []
    skipped: list[Skipped] = []
    for source in progress(list(sources), desc=desc, unit="file", leave=False):
        try:
            usable.append((source, probe_audio(source.path)))
        except AudioError as error:
            skipped.append(Skipped(source.id, str(error.path), error.problem))
    return usable, skipped


def refuse_if_strict(skipped: Sequence[Skipped], strict: bool) -> None:
    """In strict mode any bad file stops the recipe, naming the first few of them."""
    if strict and skipped:
        first, rest = skipped[0], skipped[1:STRICT_LISTED]
        others = "".join(f"; {bad.path}: {bad.problem}" for bad in rest)
        more = "; ..." if len(skipped) > STRICT_LISTED else ""
        raise AudioError(
            first.path, f"{first.problem} ({len(skipped)} unusable file(s) in all{others}{more})"
        )


def record_skipped(out: Path, skipped: Sequence[Skipped]) -> None:
    """Write ``out/skipped.json`` (or drop a stale one) and say so in one line."""
    path = out / SKIPPED_FILE
    if not skipped:
        path.unlink(missing_ok=True)
        return
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, [asdict(bad) for bad in skipped])
    log.warning("skipped %d unusable audio file(s); see %s", len(skipped), path)


def read_skipped(out: Path) -> list[Skipped]:
    path = out / SKIPPED_FILE
    return [Skipped(**row) for row in json.loads(path.read_text())] if path.is_file() else []


def reference_dataset(
    out: Path,
    sources: Iterable[Source],
    labels: LabelSet,
    strict: bool,
    desc: str,
) -> Manifest:
    """A dataset whose clips point at the user's files by absolute path (nothing copied)."""
    usable, skipped = probe_sources(sources, desc)
    refuse_if_strict(skipped, strict)
    clips = [
        Clip(
            id=source.id,
            audio=str(source.path.resolve()),
            labels=source.labels,
            split=source.split,
            duration=duration,
            speaker=source.speaker,
        )
        for source, duration in usable
    ]
    return save_dataset(out, clips, labels, skipped)


def save_dataset(
    out: Path, clips: Sequence[Clip], labels: LabelSet, skipped: Sequence[Skipped]
) -> Manifest:
    if not clips:
        raise ManifestError(out, "no usable clips to write")
    manifest = Manifest(out, sorted(clips, key=lambda clip: clip.id), labels)
    record_skipped(out, skipped)
    manifest.save()
    return manifest


# -- determinism ----------------------------------------------------------------------
def stable_hash(text: str) -> int:
    """A 64-bit hash that, unlike ``hash()``, is the same in every process and run."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def clip_rng(seed: int, clip_id: str, stream: int = 0) -> np.random.Generator:
    """Randomness owned by one clip: independent of order, worker and the other clips."""
    return np.random.default_rng([seed, stable_hash(clip_id), stream])


def hash_fraction(text: str) -> float:
    """A uniform number in [0, 1) fixed by ``text``, for order-free splits."""
    return stable_hash(text) / 2**64


# -- running jobs ---------------------------------------------------------------------
def run_jobs(work: Callable, jobs: Sequence, num_jobs: int, desc: str) -> list:
    """Map ``work`` over ``jobs`` in order, in worker processes when ``num_jobs > 1``.

    Results come back in job order, so with per-clip seeds (:func:`clip_rng`) a recipe
    writes the same dataset whatever ``num_jobs`` is. Workers are spawned, so ``work``
    and the jobs must be picklable (a module-level function, e.g. under ``partial``).
    """
    shown = partial(progress, total=len(jobs), desc=desc, unit="clip")
    if num_jobs <= 1:
        return [work(job) for job in shown(jobs)]
    chunk = max(1, len(jobs) // (num_jobs * 8))
    with ProcessPoolExecutor(num_jobs, mp_context=get_context("spawn")) as pool:
        return list(shown(pool.map(work, jobs, chunksize=chunk)))
