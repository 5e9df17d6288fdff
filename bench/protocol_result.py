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
from typing import Any

from results_tables import save_result

from pipeline.data.manifest import Manifest
from pipeline.stats import RunRecord, compare, paired_difference
from stages.folds import pooled_rows, run_records

FOLDS = 5
ROLLOUT = "rollout"
SETTINGS = {
    "data": "noisy digits L = 2 s, speaker fold K of 5 (test = one speaker, valid = recordings "
    "0-4 of the training speakers), noise regions 80/10/10 %",
    "teacher": "whisper-tiny.en preset, pretrained recipe (3 epochs, lr 1e-4), --remix, "
    "one per fold",
    "students": "tc-resnet8, att-rnn; tkd defaults of the commit (30 epochs, batch 64, Adam "
    "lr 1e-3 without weight decay, cosine)",
    "kd": "none, attention, logits, both at lambda 0.25; teacher attention auto (the most "
    "localised stored layer, chosen on each fold's training split) and rollout",
    "seeds": 2,
}
# The protocol's later cells (issue 13 item 5), which bench/protocol_cpu.sh does not run.
LATER_CELLS = [
    "CRNN (cell 2)",
    "lambda in {0.1, 0.25, 0.5} chosen on valid (cell 3; lambda = 0.25 only)",
    "L = 4 s (cell 4)",
    "LSTM-P and MHAtt-RNN (cell 5)",
]


def source_differences(records: list[RunRecord]) -> list[dict[str, Any]]:
    """Each KD condition distilled from another teacher attention source (``auto``: the
    most localised layer) against the same condition from the rollout, paired on fold
    and seed: which of the two transfers better."""
    rows = []
    others = {r.condition for r in records if r.source not in (None, ROLLOUT)}
    for student, kd, weight, source in sorted(others):
        difference = paired_difference(
            records, (student, kd, weight, ROLLOUT), (student, kd, weight, source)
        )
        if difference is not None:
            rows.append(
                {
                    "student": student,
                    "kd": kd,
                    "kd_weight": weight,
                    "source": source,
                    "minus": ROLLOUT,
                    "difference": difference.to_json(),
                }
            )
    return rows


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
    results["source_differences"] = source_differences(records)
    cores = len(os.sched_getaffinity(0))
    names = {fold["fold"] for fold in results["folds"]}
    missing = [f"fold{k}" for k in range(FOLDS) if f"fold{k}" not in names]
    cut = [f"{', '.join(missing)} of {FOLDS} folds"] if missing else []
    record = {
        "machine": f"{platform.machine()} CPU, {cores} cores, no GPU",
        "wall_note": "wall_s covers the last invocation of the protocol; a teacher, cache or "
        "run an earlier invocation finished was reused (teacher fine-tuning per fold: "
        f"{[fold.get('teacher_wall_seconds') for fold in results['folds']]} s)",
        "settings": SETTINGS,
        "cut_for_time": cut + LATER_CELLS,
        **results,
    }
    return save_result(name, record, wall_s, command)


if __name__ == "__main__":
    print(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])))
