"""Stage two's default recipe before any KD: labels only, the same runs with AdamW's
weight decay at each value given, on prepared speaker folds.

The recipe is chosen on the valid split (the training speakers' held-out recordings);
the test split (the fold's unseen speaker) is reported beside it, never used to choose.
Each decay is compared with the first one on the same (fold, seed): the paired
difference with its 95 % interval (`pipeline.stats`). Runs are resume-safe (a finished
run is found, not redone) and use one thread each.

    python bench/student_recipe.py --data F0 --data F1 --out WORK \\
        --students tc-resnet8,att-rnn --weight-decays 0,0.01 --seeds 2
Writes docs/results/student-recipe-cpu.json.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from results_tables import save_result

from pipeline.stats import paired_gain, summarise
from stages.train_student import StudentTrainingOptions, train_student


def compare_decays(runs: list[dict[str, Any]], decays: list[float]) -> list[dict[str, Any]]:
    """Per student and decay: valid and test mean ± std (n) and the paired difference
    against the first decay on the same (fold, seed)."""
    rows = []
    for student in dict.fromkeys(run["student"] for run in runs):
        score = {
            (run["weight_decay"], run["fold"], run["seed"]): run
            for run in runs
            if run["student"] == student
        }
        for decay in decays:
            pairs = [key[1:] for key in score if key[0] == decay]
            row: dict[str, Any] = {"student": student, "weight_decay": decay, "n": len(pairs)}
            for split in ("valid", "test"):
                values = [score[(decay, *pair)][split] for pair in pairs]
                stats = summarise(values)
                row[split] = {"mean": stats.mean, "std": stats.std, "n": stats.n}
                if decay != decays[0]:
                    gain = paired_gain(
                        score[(decay, *pair)][split] - score[(decays[0], *pair)][split]
                        for pair in pairs
                        if (decays[0], *pair) in score
                    )
                    row[f"{split}_difference"] = {
                        "mean": gain.mean,
                        "interval": gain.interval,
                        "n": gain.n,
                    }
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", action="append", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--students", default="tc-resnet8,att-rnn")
    parser.add_argument("--weight-decays", default="0,0.01")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=StudentTrainingOptions.epochs)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    decays = [float(x) for x in args.weight_decays.split(",")]
    base = StudentTrainingOptions(epochs=args.epochs, device="cpu")
    runs = []
    for fold, data in enumerate(args.data):
        for student in args.students.split(","):
            for seed in range(args.seeds):
                for decay in decays:
                    options = replace(base, student=student, seed=seed, weight_decay=decay)
                    out = args.out / f"fold{fold}" / f"{student}-wd{decay:g}-seed{seed}"
                    metrics = train_student(data, out, None, options)
                    runs.append(
                        {
                            "fold": fold,
                            "data": str(data),
                            "student": student,
                            "weight_decay": decay,
                            "seed": seed,
                            "valid": metrics["valid"],
                            "test": metrics["test"],
                            "best_epoch": metrics["best_epoch"],
                            "train_seconds": metrics["train_seconds"],
                        }
                    )
                    print(runs[-1], flush=True)
    result = {
        "machine": f"{os.uname().machine} CPU, {len(os.sched_getaffinity(0))} cores, no GPU",
        "epochs": args.epochs,
        "threads": 1,
        "metric": "accuracy",
        "rows": compare_decays(runs, decays),
        "runs": runs,
    }
    print(save_result("student-recipe-cpu", result, time.perf_counter() - started))


if __name__ == "__main__":
    main()
