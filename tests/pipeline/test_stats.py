"""Statistics over folds × seeds, checked against values computed by hand."""

from __future__ import annotations

import pytest

from pipeline.stats import (
    PairedGain,
    RunRecord,
    Summary,
    compare,
    markdown_table,
    paired_difference,
    paired_gain,
    summarise,
    t_quantile,
)

# fold, seed -> test accuracy
NONE = {(0, 0): 0.70, (0, 1): 0.72, (1, 0): 0.60, (1, 1): 0.66}
ATTENTION = {(0, 0): 0.74, (0, 1): 0.75, (1, 0): 0.63, (1, 1): 0.70, (2, 0): 0.90}  # +4 +3 +3 +4
LOGITS = {(0, 0): 0.75, (0, 1): 0.67, (1, 0): 0.61, (1, 1): 0.65}  # +5 -5 +1 -1


def records() -> list[RunRecord]:
    rows = [RunRecord(f, s, "tc", "none", None, None, m) for (f, s), m in NONE.items()]
    rows += [
        RunRecord(f, s, "tc", "attention", 0.5, "rollout", m) for (f, s), m in ATTENTION.items()
    ]
    rows += [RunRecord(f, s, "tc", "logits", 0.5, None, m) for (f, s), m in LOGITS.items()]
    rows.append(RunRecord(0, 0, "tc", "both", 0.5, "rollout", 0.71))
    return rows


@pytest.mark.parametrize(
    ("df", "expected"),
    [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (9, 2.2622), (30, 2.0423)],
)
def test_t_quantile_matches_the_printed_tables(df, expected):
    assert t_quantile(df) == pytest.approx(expected, abs=1e-4)


def test_summary_is_the_sample_std_and_one_run_prints_its_n():
    # deviations from 0.67: .03 .05 -.07 -.01 -> sum of squares .0084, / 3 -> sd 0.052915
    stats = summarise(NONE.values())
    assert stats.mean == pytest.approx(0.67) and stats.std == pytest.approx(0.052915, abs=1e-6)
    assert stats.format() == "67.0 ± 5.3 (n = 4)"
    assert summarise([0.5]) == Summary(0.5, None, 1)
    assert summarise([0.5]).format() == "50.0 (n = 1)"


def test_paired_gain_has_the_t_interval():
    # differences .04 .03 .03 .04: mean .035, sd .0057735, half-width 3.1824 * sd / 2
    gain = paired_gain([0.04, 0.03, 0.03, 0.04])
    assert gain.mean == pytest.approx(0.035) and gain.n == 4
    assert gain.interval == pytest.approx((0.025813, 0.044187), abs=1e-6)
    assert gain.excludes_zero and gain.format() == "+3.5 [+2.6, +4.4] (n = 4)"
    assert PairedGain.from_json(gain.to_json()) == gain  # results files keep it whole
    single = paired_gain([0.02])
    assert single == PairedGain(0.02, None, 1) and not single.excludes_zero
    assert PairedGain.from_json(single.to_json()) == single
    assert single.format() == "+2.0 (n = 1, no interval)"
    assert paired_gain([-0.04, -0.03, -0.03, -0.04]).excludes_zero  # a loss is significant too


def test_compare_pairs_kd_with_the_same_fold_and_seed_without_kd():
    rows = {(r.kd): r for r in compare(records())}
    assert list(rows) == ["none", "attention", "both", "logits"]  # no-KD row first
    assert rows["none"].gain is None and rows["none"].score.n == 4
    attention = rows["attention"]
    assert attention.score.n == 5  # fold 2 counts in the score ...
    assert attention.gain.n == 4 and attention.gain.mean == pytest.approx(0.035)  # ... not the gain
    logits = rows["logits"].gain
    assert logits.mean == pytest.approx(0.0) and not logits.excludes_zero
    # differences +5 -5 +1 -1 points: sd sqrt(.0052 / 3) = .041633, half 3.1824 * sd / 2
    assert logits.interval == pytest.approx((-0.066248, 0.066248), abs=1e-6)
    assert rows["both"].gain == PairedGain(pytest.approx(0.01), None, 1)


def test_two_sources_are_compared_on_the_pairs_both_ran():
    layer = {(0, 0): 0.70, (0, 1): 0.74, (1, 0): 0.66, (1, 1): 0.72, (3, 0): 0.5}
    rows = records() + [
        RunRecord(f, s, "tc", "attention", 0.5, "layer:4", m) for (f, s), m in layer.items()
    ]
    rollout, top = ("tc", "attention", 0.5, "rollout"), ("tc", "attention", 0.5, "layer:4")
    # layer:4 - rollout on (0,0) (0,1) (1,0) (1,1): -4 -1 +3 +2 points; fold 2 and 3 unpaired
    difference = paired_difference(rows, rollout, top)
    assert difference.n == 4 and difference.mean == pytest.approx(0.0)
    # sd sqrt(.0030 / 3) = .031623, half-width 3.1824 * sd / 2
    assert difference.interval == pytest.approx((-0.050317, 0.050317), abs=1e-5)
    assert paired_difference(rows, top, rollout).mean == pytest.approx(0.0)
    assert paired_difference(rows, rollout, ("tc", "both", 0.5, "layer:4")) is None


def test_a_condition_without_baseline_runs_has_no_gain():
    only_kd = [RunRecord(0, 0, "crnn", "attention", 0.5, "rollout", 0.8)]
    (row,) = compare(only_kd)
    assert row.gain is None and row.score.n == 1


def test_duplicate_runs_and_incomplete_records_are_refused():
    with pytest.raises(ValueError, match="two runs of .* on fold 0, seed 0"):
        compare([*records(), RunRecord(0, 0, "tc", "none", None, None, 0.5)])
    with pytest.raises(ValueError, match="lacks seed"):
        RunRecord.from_json(
            {
                "fold": 0,
                "student": "tc",
                "kd": "none",
                "weight": None,
                "source": None,
                "metric": 0.5,
            }
        )
    line = {
        "fold": 1,
        "seed": 2,
        "student": "tc",
        "kd": "none",
        "weight": None,
        "source": None,
        "metric": 0.5,
        "extra": "ignored",
    }
    assert RunRecord.from_json(line) == RunRecord(1, 2, "tc", "none", None, None, 0.5)


def test_markdown_table_prints_n_intervals_and_verdicts():
    table = markdown_table(compare(records()))
    lines = table.splitlines()
    assert lines[2] == "| tc | none |  |  | 67.0 ± 5.3 (n = 4) |  |  |"
    assert lines[3].endswith("| +3.5 [+2.6, +4.4] (n = 4) | yes |")
    # mean 3.72 / 5 = .744; squared deviations sum to .03932, / 4 -> sd .099146
    assert lines[3].startswith("| tc | attention | 0.5 | rollout | 74.4 ± 9.9 (n = 5) |")
    assert lines[4] == "| tc | both | 0.5 | rollout | 71.0 (n = 1) | +1.0 (n = 1, no interval) |  |"
    assert lines[5].endswith("| +0.0 [-6.6, +6.6] (n = 4) | no (interval includes 0) |")
    assert "± 0.0 " not in table
