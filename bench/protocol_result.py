"""Commit a `tkd run` over folds as data: docs/results/NAME.json from RUNS/results.json.

    python bench/protocol_result.py RUNS NAME "COMMAND" WALL_SECONDS

Keeps the pooled table (mean ± std over folds × seeds, paired KD gains), every run's
record, and each fold's teacher (test score, in-event mass, fine-tuning time), with the
command, commit and machine (:func:`results_tables.save_result`).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

from results_tables import save_result

from pipeline.data.manifest import Manifest
from pipeline.stats import compare
from stages.folds import pooled_rows, run_records


def main(runs: Path, name: str, command: str, wall_s: float) -> Path:
    results = json.loads((runs / "results.json").read_text())
    records, masses = [], []  # pooled again from each fold's sweep, as run_folds pools them
    for fold in results["folds"]:
        summary = json.loads((runs / fold["fold"] / "results.json").read_text())
        records += run_records(fold["fold"], summary)
        masses += run_records(fold["fold"], summary, "test_in_event_mass")
    results["table"] = pooled_rows(compare(records), compare(masses))
    for fold in results["folds"]:  # who the test clips speak: the voices no model heard
        test = Manifest.load(fold["data"]).split("test")
        fold["test_speakers"] = sorted({clip.speaker for clip in test})
    cores = len(os.sched_getaffinity(0))
    record = {
        "machine": f"{platform.machine()} CPU, {cores} cores, no GPU",
        **results,
    }
    return save_result(name, record, wall_s, command)


if __name__ == "__main__":
    print(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])))
