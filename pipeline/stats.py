"""Statistics over repeated runs: mean ± std over folds × seeds, and the paired KD gain.

A run is one student trained on one speaker fold with one seed, with or without KD. The
score of a condition (student, KD mode, λ, teacher attention source) is its mean over
all its runs, with the sample standard deviation and n; one run has no spread, so it
prints its n instead of "± 0.00".

KD is judged *paired*: each KD run is compared with the run of the same student on the
same fold and seed without KD, which removes the fold's difficulty and the seed's luck
from the comparison. The gain is the mean of those differences with a 95 % Student-t
interval; it is called a gain only when the interval excludes zero.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

NO_KD = "none"
CONFIDENCE = 0.95


@dataclass(frozen=True)
class RunRecord:
    """One student run's test score; ``weight`` (λ) and ``source`` are None without KD."""

    fold: int | str
    seed: int
    student: str
    kd: str
    weight: float | None
    source: str | None
    metric: float

    @property
    def condition(self) -> tuple[str, str, float | None, str | None]:
        return self.student, self.kd, self.weight, self.source

    @classmethod
    def from_json(cls, line: Mapping[str, Any]) -> RunRecord:
        missing = [key for key in cls.__dataclass_fields__ if key not in line]
        if missing:
            raise ValueError(f"run record {dict(line)} lacks {', '.join(missing)}")
        return cls(**{key: line[key] for key in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Summary:
    """Mean, sample std (None for one run) and n of a set of scores."""

    mean: float
    std: float | None
    n: int

    def format(self, scale: float = 100, digits: int = 1) -> str:
        spread = "" if self.std is None else f" ± {self.std * scale:.{digits}f}"
        return f"{self.mean * scale:.{digits}f}{spread} (n = {self.n})"


@dataclass(frozen=True)
class PairedGain:
    """Mean paired difference (KD minus no KD) with its t-interval (None for one pair)."""

    mean: float
    interval: tuple[float, float] | None
    n: int

    @property
    def excludes_zero(self) -> bool:
        """A gain (or loss) only when the interval lies wholly on one side of zero."""
        return self.interval is not None and (self.interval[0] > 0 or self.interval[1] < 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "interval": self.interval,
            "n": self.n,
            "excludes_zero": self.excludes_zero,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PairedGain:
        interval = data["interval"]
        return cls(data["mean"], tuple(interval) if interval else None, data["n"])

    def format(self, scale: float = 100, digits: int = 1) -> str:
        if self.interval is None:
            return f"{self.mean * scale:+.{digits}f} (n = {self.n}, no interval)"
        low, high = (f"{edge * scale:+.{digits}f}" for edge in self.interval)
        return f"{self.mean * scale:+.{digits}f} [{low}, {high}] (n = {self.n})"


def summarise(values: Iterable[float]) -> Summary:
    values = list(values)
    if not values:
        raise ValueError("no values to summarise")
    std = statistics.stdev(values) if len(values) > 1 else None
    return Summary(statistics.fmean(values), std, len(values))


def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """Two-sided Student-t critical value: P(|T| < t) = ``confidence`` with ``df`` degrees
    of freedom, by bisection on the exact closed form for integer df (Abramowitz &
    Stegun 26.7.3-4); numpy has no t distribution and scipy is not a dependency."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    low, high = 0.0, 1e4
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if _t_central(middle, df) < confidence else (low, middle)
    return (low + high) / 2


def _t_central(t: float, df: int) -> float:
    """P(|T| < t) for integer ``df``."""
    theta = math.atan(t / math.sqrt(df))
    cos2 = math.cos(theta) ** 2
    term, total = 1.0, 1.0
    for k in range(2, df - 1 - df % 2, 2):  # odd df: 2, 4, ..., df-3; even: 2, 4, ..., df-2
        term *= cos2 * (k / (k + 1) if df % 2 else (k - 1) / k)
        total += term
    if df % 2 == 0:
        return math.sin(theta) * total
    series = math.sin(theta) * math.cos(theta) * total if df > 1 else 0.0
    return 2 / math.pi * (theta + series)


def paired_gain(differences: Iterable[float], confidence: float = CONFIDENCE) -> PairedGain:
    differences = list(differences)
    stats = summarise(differences)
    if stats.std is None:
        return PairedGain(stats.mean, None, 1)
    half = t_quantile(stats.n - 1, confidence) * stats.std / math.sqrt(stats.n)
    return PairedGain(stats.mean, (stats.mean - half, stats.mean + half), stats.n)


@dataclass(frozen=True)
class ConditionResult:
    """One row of a results table: the condition's score and, for KD, its paired gain."""

    student: str
    kd: str
    weight: float | None
    source: str | None
    score: Summary
    gain: PairedGain | None


def compare(records: Iterable[RunRecord]) -> list[ConditionResult]:
    """Every condition's score over folds × seeds, and each KD condition's paired gain
    over the (fold, seed) pairs that also have a no-KD run (None when there are none)."""
    by_condition: dict[tuple, dict[tuple, float]] = defaultdict(dict)
    for record in records:
        runs = by_condition[record.condition]
        key = (record.fold, record.seed)
        if key in runs:
            raise ValueError(f"two runs of {record.condition} on fold {key[0]}, seed {key[1]}")
        runs[key] = record.metric
    results = []
    for condition in sorted(by_condition, key=_order):
        runs = by_condition[condition]
        student, kd = condition[:2]
        gain = None
        if kd != NO_KD:
            baseline = by_condition.get((student, NO_KD, None, None), {})
            pairs = [runs[key] - baseline[key] for key in sorted(runs, key=str) if key in baseline]
            gain = paired_gain(pairs) if pairs else None
        results.append(ConditionResult(*condition, summarise(runs.values()), gain))
    return results


def paired_difference(
    records: Iterable[RunRecord], first: tuple, second: tuple
) -> PairedGain | None:
    """``second`` − ``first`` (two conditions, e.g. two teacher attention sources) over
    the (fold, seed) pairs both ran, with its interval; None when no pair ran both."""
    runs: dict[tuple, dict[tuple, float]] = {first: {}, second: {}}
    for record in records:
        if record.condition in runs:
            runs[record.condition][record.fold, record.seed] = record.metric
    pairs = sorted(set(runs[first]) & set(runs[second]), key=str)
    if not pairs:
        return None
    return paired_gain(runs[second][key] - runs[first][key] for key in pairs)


def _order(condition: tuple) -> tuple:
    """Students by name, the no-KD row first, then KD mode, λ and source."""
    student, kd, weight, source = condition
    return student, kd != NO_KD, kd, weight or 0.0, source or ""


def markdown_table(results: Iterable[ConditionResult], scale: float = 100) -> str:
    """The results as a Markdown table; "gain?" is yes/no only where there is an interval."""
    header = ("student", "KD", "λ", "teacher attention", "test (mean ± std, n)")
    header += ("paired KD gain [95 % CI]", "gain?")
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for row in results:
        gain = "" if row.gain is None else row.gain.format(scale)
        verdict = "" if row.gain is None or row.gain.interval is None else _verdict(row.gain)
        weight = "" if row.weight is None else f"{row.weight:g}"
        lines.append(
            f"| {row.student} | {row.kd} | {weight} | {row.source or ''} "
            f"| {row.score.format(scale)} | {gain} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def _verdict(gain: PairedGain) -> str:
    if not gain.excludes_zero:
        return "no (interval includes 0)"
    return "yes" if gain.mean > 0 else "no (a loss)"
