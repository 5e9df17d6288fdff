"""FSD50K: multi-label sound events, referenced in place.

Layout: ``FSD50K.ground_truth/dev.csv`` (fname,labels,mids,split with split train/val),
``FSD50K.ground_truth/eval.csv`` (fname,labels,mids), audio in ``FSD50K.dev_audio/``
and ``FSD50K.eval_audio/``. Labels are comma-separated inside the quoted field.
Splits: train -> train, val -> valid, eval -> test. Class order comes from
``vocabulary.csv`` (index,label,mid; no header) when present, else the sorted union.
Clip ids are ``dev-{fname}`` / ``eval-{fname}`` so the two parts can never collide.
"""

from __future__ import annotations

import csv
from pathlib import Path

from pipeline.data.manifest import LabelSet, Manifest
from pipeline.data.recipes.common import Source, read_rows, reference_dataset, require_dir
from pipeline.errors import ManifestError

GROUND_TRUTH = "FSD50K.ground_truth"
DEV_SPLITS = {"train": "train", "val": "valid"}


def fsd50k_sources(root: Path) -> list[Source]:
    truth = require_dir(root, "FSD50K") / GROUND_TRUTH
    parts = (("dev", truth / "dev.csv"), ("eval", truth / "eval.csv"))
    sources = []
    for part, csv_path in parts:
        audio = require_dir(root / f"FSD50K.{part}_audio", "audio")
        columns = ("fname", "labels", "split") if part == "dev" else ("fname", "labels")
        for number, row in enumerate(read_rows(csv_path, columns), start=2):
            split = DEV_SPLITS.get(row["split"]) if part == "dev" else "test"
            if split is None:
                raise ManifestError(
                    csv_path, f"line {number}: split {row['split']!r} is not train or val"
                )
            labels = tuple(label for label in row["labels"].split(",") if label)
            if not labels:
                raise ManifestError(csv_path, f"line {number}: clip {row['fname']} has no labels")
            path = audio / f"{row['fname']}.wav"
            sources.append(Source(f"{part}-{row['fname']}", path, labels, split))
    return sources


def vocabulary(root: Path, sources: list[Source]) -> tuple[str, ...]:
    """Class names in the dataset's own index order, or sorted when it has no list."""
    path = root / GROUND_TRUTH / "vocabulary.csv"
    if not path.is_file():
        return tuple(sorted({label for source in sources for label in source.labels}))
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if row]
    try:
        return tuple(label for _, label, *_ in sorted(rows, key=lambda row: int(row[0])))
    except (ValueError, IndexError):
        raise ManifestError(path, "expected rows of index,label,mid") from None


def prepare_fsd50k(root: Path, out: Path, strict: bool = False) -> Manifest:
    """Write the FSD50K manifest (multi-label), audio referenced by absolute path."""
    root = Path(root)
    sources = fsd50k_sources(root)
    labels = LabelSet(vocabulary(root, sources), multi_label=True)
    return reference_dataset(Path(out), sources, labels, strict, "fsd50k")
