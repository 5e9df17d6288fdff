"""bench/pool_folds.py: folds of several protocol results pooled into one table."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))  # pool_folds imports results_tables as a sibling
spec = importlib.util.spec_from_file_location("pool_folds", ROOT / "bench/pool_folds.py")
pool_folds = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pool_folds)


def protocol(path: Path, folds: dict[str, dict[str, float]]) -> Path:
    """A protocol result: per fold, condition label -> test score of seed 0."""
    runs = []
    for fold, scores in folds.items():
        for label, metric in scores.items():
            kd, _, source = label.partition("@")
            runs.append(
                {
                    "fold": fold,
                    "seed": 0,
                    "student": "tc",
                    "kd": kd,
                    "weight": None if kd == "none" else 0.25,
                    "source": source or None,
                    "metric": metric,
                }
            )
    record = {"command": "c", "commit": "abc", "folds": [{"fold": f} for f in folds]}
    path.write_text(json.dumps({**record, "runs": runs}))
    return path


def test_folds_pool_across_files_keeping_the_asked_sources(tmp_path):
    old = protocol(tmp_path / "old.json", {"fold0": {"none": 0.5, "attention@auto": 0.6}})
    scores = {"none": 0.4, "attention@auto": 0.6, "attention@rollout": 0.3, "logits": 0.5}
    new = protocol(tmp_path / "new.json", {"fold0": scores, "fold4": scores})
    pooled = pool_folds.pool([(old, ["fold0"]), (new, ["fold4"])], {"auto"})
    assert [fold["origin"] for fold in pooled["folds"]] == ["old.json", "new.json"]
    rows = {(row["kd"], row["source"]): row for row in pooled["table"]}
    # rollout was not asked for; logits ran on fold4 only, so it is not pooled
    assert set(rows) == {("none", None), ("attention", "auto")}
    attention = rows["attention", "auto"]
    assert attention["test"]["n"] == 2 and attention["paired_gain"]["mean"] == pytest.approx(0.15)


def test_a_fold_pooled_twice_or_missing_is_refused(tmp_path):
    one = protocol(tmp_path / "one.json", {"fold0": {"none": 0.5}})
    with pytest.raises(SystemExit, match="already pooled"):
        pool_folds.pool([(one, ["fold0"]), (one, ["fold0"])], {"auto"})
    with pytest.raises(SystemExit, match="no fold"):
        pool_folds.pool([(one, ["fold3"])], {"auto"})
