"""What KD costs stage two: training steps/s of every student with ``--kd none`` against
``--kd both`` (attention and logit KD: the most work KD adds), without and with cached
views (goal: KD costs < 3 % of throughput for every student, views included).

The cost compared is KD's own (the targets, their resampling to the student's steps, the
attention head, which a run without attention KD does not run, and the KD losses): both
runs of a pair read the same data path, so with ``--views`` both replay the same views.
Runs of a pair alternate, ``--repeats`` rounds, the first of a pair swapping every round,
in one process with one thread, so the order hits both alike; the cost is the median over
rounds of 1 - rate(KD) / rate(none). The rate is training steps per second of the
process's CPU time in the fit loop (data loading and training steps; the per-epoch
evaluation is not counted): CPU time, unlike wall time, does not count the time other
processes on a shared machine hold the core (on a GPU, whose work the host waits for, the
rate is per wall second). The teacher is an untrained whisper-tiny: its targets cost the
same as a trained one's. Beside each student, its training-only attention head's share of
its multiply-adds, the compute that attention KD adds (what else it adds: docs/results.md
section 4).

    python bench/student_throughput.py --device cpu [--attention-dim 16 --students ...]
Writes docs/results/student-throughput-<device>[-head<width>].json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from results_tables import save_result

from pipeline.data.augment import ViewSettings
from pipeline.data.manifest import Manifest
from pipeline.data.recipes.synth import SynthConfig, prepare_synth
from pipeline.student.architectures import DEFAULT_ATTENTION_DIM, STUDENTS, build_student
from pipeline.student.architectures.complexity import count_macs
from pipeline.student.architectures.distill import DistillationModel
from pipeline.teacher.extraction import ExtractionSettings
from pipeline.teacher.model import build_teacher
from stages.extract_teacher import extract_teacher
from stages.train_student import StudentTrainingOptions, train_student

BATCH_SIZE = StudentTrainingOptions().batch_size  # what runs train with
CLIP_SECONDS = 2.0
KD = "both"


def teacher_cache(work: Path, views: int) -> tuple[Path, Path]:
    """A synthetic dataset and an untrained teacher's cache of it with ``views`` views."""
    data = work / "data"
    prepare_synth(data, SynthConfig(length=CLIP_SECONDS), clips_per_class=(80, 5, 5))
    teacher = work / "teacher"
    model, extractor = build_teacher("whisper-tiny", Manifest.load(data).labels, CLIP_SECONDS)
    model.save_pretrained(teacher)
    extractor.save_pretrained(teacher)
    settings = ExtractionSettings(views=views, augment=ViewSettings())
    return data, extract_teacher(data, teacher, work / "cache", settings).cache_dir


def head_mac_share(student: str, classes: int, options: StudentTrainingOptions) -> float:
    """The training-only attention head's multiply-adds over the student's, per clip: the
    compute attention KD adds, whatever the data path (0 for attention students)."""
    features = options.features
    frames = features.frames(round(CLIP_SECONDS * features.sample_rate))
    model = DistillationModel(build_student(student, classes, features.dim), options.attention_dim)
    bare = count_macs(model.student, frames, features.dim)
    return (count_macs(model, frames, features.dim) - bare) / bare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--views", type=int, default=4, help="views of the second data path")
    parser.add_argument("--students", default=",".join(sorted(STUDENTS)))
    parser.add_argument(
        "--attention-dim",
        type=int,
        default=DEFAULT_ATTENTION_DIM,
        help="width of the training-only attention head (another than the default writes "
        "student-throughput-<device>-head<width>.json)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="tkd-bench-"))
    data, cache = teacher_cache(work, args.views)
    # CPU time on a CPU; on a GPU the host waits on the device, so wall time
    rate = "steps_per_cpu_second" if args.device == "cpu" else "steps_per_second"
    base = StudentTrainingOptions(
        epochs=args.epochs,
        batch_size=BATCH_SIZE,
        device=args.device,
        attention_dim=args.attention_dim,
    )
    classes = len(Manifest.load(data).labels.names)
    rows = []
    for student in args.students.split(","):
        head = round(head_mac_share(student, classes, base), 4)
        for views in sorted({1, args.views}):
            rates: dict[str, list[float]] = {"none": [], KD: []}
            for round_ in range(args.repeats):
                for kd in list(rates)[:: 1 if round_ % 2 == 0 else -1]:  # neither always first
                    options = replace(base, student=student, kd=kd, views=views, seed=round_)
                    out = work / "runs" / f"{student}-{kd}-views{views}-{round_}"
                    run = train_student(data, out, cache, options)
                    rates[kd].append(run[rate])
            costs = [1 - with_kd / without for with_kd, without in zip(rates[KD], rates["none"])]
            rows.append(
                {
                    "student": student,
                    "views": views,
                    "steps_per_s_none": statistics.median(rates["none"]),
                    f"steps_per_s_{KD}": statistics.median(rates[KD]),
                    "kd_cost": round(statistics.median(costs), 4),
                    "kd_cost_range": [round(min(costs), 4), round(max(costs), 4)],
                    "attention_head_macs": head,
                }
            )
            print(rows[-1], flush=True)
    device = torch.device(args.device)
    result = {
        "device": str(device),
        "machine": torch.cuda.get_device_name() if device.type == "cuda" else platform.machine(),
        "threads": torch.get_num_threads(),
        "batch_size": BATCH_SIZE,
        "clip_seconds": CLIP_SECONDS,
        "epochs": args.epochs,
        "repeats": args.repeats,
        "kd": KD,
        "attention_dim": args.attention_dim,
        "rate": "cpu" if rate == "steps_per_cpu_second" else "wall",
        "goal": "kd_cost < 0.03 for every student, with and without views",
        "rows": rows,
    }
    name = f"student-throughput-{device.type}"
    if args.attention_dim != DEFAULT_ATTENTION_DIM:
        name += f"-head{args.attention_dim}"
    save_result(name, result, time.perf_counter() - started)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
