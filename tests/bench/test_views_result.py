"""bench/views_result.py: issue 14's conditions pooled over seeds and compared in pairs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))  # views_result imports results_tables as a sibling
spec = importlib.util.spec_from_file_location("views_result", ROOT / "bench/views_result.py")
views_result = importlib.util.module_from_spec(spec)
spec.loader.exec_module(views_result)


def sweep(
    runs: Path,
    name: str,
    scores: dict[str, list[float]],
    fold: str = "fold0",
    valid_offset: dict[str, float] | None = None,
) -> None:
    """A `run` sweep folder ``runs/fold/tc/name``: per KD mode, test scores by seed, and
    valid scores the same plus the mode's ``valid_offset``."""
    records = [
        {
            "student": "tc",
            "kd": kd,
            "kd_weight": 0.25,
            "seed": seed,
            "valid": score + (valid_offset or {}).get(kd, 0.0),
            "test": score,
            "test_in_event_mass": None,
            "epochs_run": 30,
        }
        for kd, values in scores.items()
        for seed, score in enumerate(values)
    ]
    folder = runs / fold / "tc" / name
    folder.mkdir(parents=True)
    summary = {"data": f"/data/{fold}", "cache": None, "runs": records}
    (folder / "results.json").write_text(json.dumps(summary))


@pytest.mark.parametrize("valid_prefers", ["both", "attention"])
def test_conditions_pair_on_fold_and_seed_and_the_target_needs_five_points_clear_of_zero(
    tmp_path, valid_prefers
):
    prefer = {valid_prefers: 0.2}  # what valid says is best: the target reads that condition
    sweep(tmp_path, "b", {"none": [0.60, 0.70]})
    sweep(tmp_path, "b", {"none": [0.65]}, fold="fold1")
    views = {"none": [0.62, 0.72], "attention": [0.63, 0.73], "both": [0.70, 0.79]}
    sweep(tmp_path, "c-f", views, valid_offset=prefer)
    views = {"none": [0.64], "attention": [0.66], "both": [0.70]}
    sweep(tmp_path, "c-f", views, "fold1", prefer)  # attention: +1.3 points; both: +7
    conditions, sweeps = views_result.collect(tmp_path)
    assert sorted(sweep["condition"] for sweep in sweeps) == ["b", "b", "c-f", "c-f"]
    assert {label for _, label in conditions} == {"b", "c", "d", "f"}
    comparisons = views_result.compare_conditions(conditions)
    by_pair = {(c["second"], c["first"]): c for c in comparisons}
    assert set(by_pair) == {("c", "b"), ("d", "c"), ("f", "c")}  # e never ran
    assert by_pair["f", "c"]["test"]["mean"] == pytest.approx(0.07)
    assert by_pair["f", "c"]["test"]["n"] == 3
    rows = views_result.condition_rows(conditions)
    assert rows[0]["folds"] == ["fold0", "fold1"]
    target = views_result.target(rows, comparisons, {"fold0": 0.80, "fold1": 0.90})
    chosen = {"both": "f", "attention": "d"}[valid_prefers]
    assert target["kd_gain_over_views"]["tc"]["best"] == chosen
    assert target["kd_gain_over_views"]["tc"]["met"] is (chosen == "f")
    assert target["best_student"]["condition"] == chosen
    test = {"f": 73, "d": (63 + 73 + 66) / 3}[chosen]
    assert target["gap_to_teacher_points"] == pytest.approx(85 - test, abs=0.01)  # fold means
    assert target["within_gap"] is False


def test_a_seed_run_twice_is_refused(tmp_path):
    sweep(tmp_path, "b", {"none": [0.6]})
    sweep(tmp_path / "again", "b", {"none": [0.7]})
    with pytest.raises(SystemExit, match="fold0 seed 0 twice"):
        views_result.collect(tmp_path)
