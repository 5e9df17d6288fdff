"""ESC-50: 2,000 five-second environmental clips in 50 classes, referenced in place.

Layout: ``meta/esc50.csv`` (filename,fold,target,category,...) and ``audio/``.
ESC-50 is meant for 5-fold cross-validation; one fold is held out as test
(``test_fold``, default 5), one as valid (``valid_fold``, default 4), the other three
are train. Run once per fold choice for cross-validation. Class order follows
``target`` (0-49), so indices match the dataset's own.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.data.manifest import LabelSet, Manifest
from pipeline.data.recipes.common import Source, read_rows, reference_dataset, require_dir
from pipeline.errors import ManifestError

FOLDS = (1, 2, 3, 4, 5)


def fold_split(fold: int, test_fold: int, valid_fold: int) -> str:
    return "test" if fold == test_fold else "valid" if fold == valid_fold else "train"


def prepare_esc50(
    root: Path, out: Path, test_fold: int = 5, valid_fold: int = 4, strict: bool = False
) -> Manifest:
    """Write the ESC-50 manifest; clip ids are the file names without ``.wav``."""
    if test_fold not in FOLDS or valid_fold not in FOLDS or test_fold == valid_fold:
        raise ValueError(
            f"test_fold and valid_fold must be two different folds of {FOLDS}, "
            f"got {test_fold} and {valid_fold}"
        )
    root = Path(root)
    audio = require_dir(require_dir(root, "ESC-50") / "audio", "audio")
    csv_path = root / "meta" / "esc50.csv"
    classes: dict[int, str] = {}
    sources = []
    rows = read_rows(csv_path, ("filename", "fold", "target", "category"))
    for number, row in enumerate(rows, start=2):
        try:
            fold, target = int(row["fold"]), int(row["target"])
        except ValueError:
            raise ManifestError(
                csv_path, f"line {number}: fold and target must be integers"
            ) from None
        if fold not in FOLDS:
            raise ManifestError(csv_path, f"line {number}: fold {fold} is not one of {FOLDS}")
        if classes.setdefault(target, row["category"]) != row["category"]:
            raise ManifestError(csv_path, f"line {number}: target {target} names two categories")
        path = audio / row["filename"]
        split = fold_split(fold, test_fold, valid_fold)
        sources.append(Source(path.stem, path, (row["category"],), split))
    labels = LabelSet(tuple(classes[target] for target in sorted(classes)))
    return reference_dataset(Path(out), sources, labels, strict, "esc50")
