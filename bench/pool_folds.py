"""Pool speaker folds from several committed protocol results into one table.

    python bench/pool_folds.py NAME A.json:fold0,fold1 B.json:fold4 [--sources auto]

A fold is self-contained (its own teacher fine-tune, cache and student runs), so folds
that protocol runs made at different times pool as long as their settings agree; each
fold keeps the record of the run that made it, and the file names every origin (file,
command, commit). ``--sources`` keeps the KD runs distilled from those teacher attention
sources (KD-free and logit-only runs use none); a condition is pooled only when every
fold ran it, so no row mixes a different set of voices. In-event masses are not pooled
(the results keep them per protocol run). Writes docs/results/NAME.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from results_tables import RESULTS_DIR, save_result

from pipeline.stats import RunRecord, compare
from stages.folds import pooled_rows


def pool(picks: list[tuple[Path, list[str]]], sources: set[str]) -> dict[str, Any]:
    folds, records, origins = [], [], []
    for path, names in picks:
        data = json.loads(path.read_text())
        known = {fold["fold"]: fold for fold in data["folds"]}
        unknown = [name for name in names if name not in known]
        if unknown:
            raise SystemExit(f"{path}: no fold(s) {', '.join(unknown)}; it has {', '.join(known)}")
        if any(name in {fold["fold"] for fold in folds} for name in names):
            raise SystemExit(f"{path}: a fold of {names} is already pooled from another file")
        folds += [{**known[name], "origin": path.name} for name in names]
        records += [
            RunRecord.from_json(run)
            for run in data["runs"]
            if run["fold"] in names and (run["source"] is None or run["source"] in sources)
        ]
        origins.append(
            {
                "file": path.name,
                "command": data["command"],
                "commit": data["commit"],
                "folds": names,
                "settings": data.get("settings"),
            }
        )
    ran_on: dict[tuple, set[str]] = defaultdict(set)
    for record in records:
        ran_on[record.condition].add(record.fold)
    every_fold = {fold["fold"] for fold in folds}
    records = [record for record in records if ran_on[record.condition] == every_fold]
    return {
        "machine": "see pooled_from",
        "metric": "accuracy",
        "pooled_from": origins,
        "attention_sources_kept": sorted(sources),
        "folds": folds,
        "runs": [record.__dict__ for record in records],
        "table": pooled_rows(compare(records), []),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name")
    parser.add_argument("picks", nargs="+", help="FILE.json:FOLD,FOLD (under docs/results/)")
    parser.add_argument("--sources", default="auto", help="teacher attention sources kept")
    args = parser.parse_args()
    picks = []
    for pick in args.picks:
        file, _, names = pick.partition(":")
        picks.append((RESULTS_DIR / file, [name for name in names.split(",") if name]))
    result = pool(picks, set(args.sources.split(",")))
    print(save_result(args.name, result, None, " ".join(["python", *sys.argv])))


if __name__ == "__main__":
    main()
