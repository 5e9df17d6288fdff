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


def sweep(runs: Path, name: str, scores: dict[str, list[float]], student: str = "tc") -> None:
    """A `run` sweep folder ``runs/student/name``: per KD mode, test scores by seed."""
    records = [
        {
            "student": student,
            "kd": kd,
            "kd_weight": 0.25,
            "seed": seed,
            "valid": score,
            "test": score,
            "test_in_event_mass": None,
            "epochs_run": 30,
        }
        for kd, values in scores.items()
        for seed, score in enumerate(values)
    ]
    folder = runs / student / name
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({"runs": records}))


def test_conditions_pair_on_seed_and_the_target_needs_five_points_clear_of_zero(tmp_path):
    sweep(tmp_path, "b", {"none": [0.60, 0.70, 0.65]})
    sweep(
        tmp_path,
        "c-f",
        {
            "none": [0.62, 0.72, 0.64],
            "attention": [0.63, 0.73, 0.66],  # +1.3 points: a gain, not the target
            "both": [0.70, 0.79, 0.70],  # +7 points, every seed: the target
        },
    )
    conditions, sweeps = views_result.collect(tmp_path)
    assert set(sweeps) == {"b", "c-f"}
    assert {label for _, label in conditions} == {"b", "c", "d", "f"}
    comparisons = views_result.compare_conditions(conditions)
    by_pair = {(c["second"], c["first"]): c for c in comparisons}
    assert set(by_pair) == {("c", "b"), ("d", "c"), ("f", "c")}  # e never ran
    assert by_pair["f", "c"]["test"]["mean"] == pytest.approx(0.07)
    assert by_pair["f", "c"]["test"]["n"] == 3
    rows = views_result.condition_rows(conditions)
    target = views_result.target(rows, comparisons, teacher_test=0.85)
    assert target["kd_gain_over_views"]["tc"]["best"] == "f"
    assert target["kd_gain_over_views"]["tc"]["met"] is True
    assert target["best_student"]["condition"] == "f"
    assert target["gap_to_teacher_points"] == pytest.approx(85 - 73, abs=0.01)
    assert target["within_gap"] is False


def test_a_seed_run_twice_is_refused(tmp_path):
    sweep(tmp_path, "b", {"none": [0.6]})
    sweep(tmp_path / "again", "b", {"none": [0.7]})
    with pytest.raises(SystemExit, match="seed 0 twice"):
        views_result.collect(tmp_path)
