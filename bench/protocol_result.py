"""Commit a `tkd run` over folds as data: docs/results/NAME.json from its fold sweeps.

    python bench/protocol_result.py NAME "COMMAND" WALL_SECONDS RUNS/fold0 ... [--cut TEXT]

Keeps the pooled table (mean ± std over folds × seeds, paired KD gains), every run's
record, and each fold's teacher (test score, in-event mass, fine-tuning time), with the
command, commit and machine (:func:`results_tables.save_result`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from results_tables import cpu_machine, protocol_parser, save_result

from pipeline.data.manifest import Manifest
from pipeline.stats import RunRecord, compare, paired_difference
from stages.folds import Fold, fold_summary, pooled_rows, run_records

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


def main(
    name: str, command: str, wall_s: float, sweeps: list[Path], cut: list[str] | None = None
) -> Path:
    """Pool the given per-fold sweep folders (``run``'s ``<out>/<fold>``); several sweeps
    of one fold (e.g. one per student) merge when they used the same teacher cache. ``cut``
    names what else was cut for time (beside missing folds and the later cells)."""
    folds: dict[str, dict[str, Any]] = {}
    records, masses = [], []
    for sweep in sweeps:
        summary = json.loads((sweep / "results.json").read_text())
        data, teacher = Path(summary["data"]), Path(summary["teacher"])
        this = fold_summary(Fold(data.name, data), teacher, summary)
        fold = folds.setdefault(data.name, this)
        if fold["cache"] and this["cache"] and fold["cache"] != this["cache"]:
            raise SystemExit(f"{sweep}: fold {data.name} used another cache than {fold['cache']}")
        fold["cache"] = fold["cache"] or this["cache"]  # a sweep without KD or views reads none
        fold["attention_sources"].update(this["attention_sources"])
        records += run_records(data.name, summary)
        masses += run_records(data.name, summary, "test_in_event_mass")
    for fold in folds.values():  # who the test clips speak: the voices no model heard
        test = Manifest.load(fold["data"]).split("test")
        fold["test_speakers"] = sorted({clip.speaker for clip in test})
    missing = [f"fold{k}" for k in range(FOLDS) if f"fold{k}" not in folds]
    cut = ([f"{', '.join(missing)} of {FOLDS} folds"] if missing else []) + (cut or [])
    record = {
        "machine": cpu_machine(),
        "wall_note": "wall_s covers the last invocation of the protocol; a teacher, cache or "
        "run an earlier invocation finished was reused (teacher fine-tuning per fold: "
        f"{[fold.get('teacher_wall_seconds') for fold in folds.values()]} s)",
        "settings": SETTINGS,
        "cut_for_time": cut + LATER_CELLS,
        "metric": next(iter(folds.values()))["metric"],
        "folds": list(folds.values()),
        "runs": [record.__dict__ for record in records],
        "table": pooled_rows(compare(records), compare(masses)),
        "source_differences": source_differences(records),
    }
    return save_result(name, record, wall_s, command)


if __name__ == "__main__":
    parser = protocol_parser(__doc__)
    parser.add_argument("sweeps", nargs="+", type=Path)
    args = parser.parse_args()
    print(main(args.name, args.command, args.wall_s, args.sweeps, args.cut))
