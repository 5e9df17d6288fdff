"""Any folder of labelled audio: one subfolder per class, audio files inside (searched
recursively; .wav, .flac, .ogg), referenced in place.

Splits come from a stable hash of each file's relative path and the seed, so a file
keeps its split whatever else is added, removed or listed first. Clip ids are the
relative path without its suffix, with ``/`` replaced by ``__`` (ids key files and
HDF5 datasets downstream, where a slash would nest).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.data.manifest import LabelSet, Manifest
from pipeline.data.recipes.common import (
    AUDIO_SUFFIXES,
    Source,
    hash_fraction,
    reference_dataset,
    require_dir,
)
from pipeline.errors import ManifestError


def hashed_split(relative: str, valid_fraction: float, test_fraction: float, seed: int) -> str:
    draw = hash_fraction(f"{seed}:{relative}")
    if draw < test_fraction:
        return "test"
    return "valid" if draw < test_fraction + valid_fraction else "train"


def folder_sources(
    root: Path, valid_fraction: float, test_fraction: float, seed: int
) -> tuple[list[Source], tuple[str, ...]]:
    require_dir(root, "dataset")
    classes = tuple(
        sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    )
    if not classes:
        raise ManifestError(root, "holds no class subfolders")
    sources: dict[str, Source] = {}
    for name in classes:
        for path in sorted((root / name).rglob("*")):
            if path.suffix.lower() not in AUDIO_SUFFIXES or not path.is_file():
                continue
            relative = path.relative_to(root).as_posix()
            clip_id = relative.rsplit(".", 1)[0].replace("/", "__")
            if clip_id in sources:
                raise ManifestError(path, f"has the same id {clip_id!r} as {sources[clip_id].path}")
            split = hashed_split(relative, valid_fraction, test_fraction, seed)
            sources[clip_id] = Source(clip_id, path, (name,), split)
    if not sources:
        raise ManifestError(root, f"holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
    return list(sources.values()), classes


def prepare_folder(
    root: Path,
    out: Path,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    strict: bool = False,
) -> Manifest:
    """Write a single-label manifest for a class-per-subfolder tree."""
    if min(valid_fraction, test_fraction) < 0 or valid_fraction + test_fraction >= 1:
        raise ValueError("valid_fraction and test_fraction must be >= 0 and sum to less than 1")
    sources, classes = folder_sources(Path(root), valid_fraction, test_fraction, seed)
    return reference_dataset(Path(out), sources, LabelSet(classes), strict, "folder")
