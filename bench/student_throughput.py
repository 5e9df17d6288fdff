"""Stage two's data path: training steps/s of every student with `--kd none` vs
`--kd attention` (goal: KD costs < 10% throughput). Features come from the feature bank;
teacher targets are read by clip id from the HDF5 cache in the DataLoader.

    python bench/student_throughput.py --device cpu
Writes docs/results/student-throughput-<device>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from results_tables import save_result

from pipeline.data.manifest import Manifest
from pipeline.data.recipes.synth import SynthConfig, prepare_synth
from pipeline.student.architectures import STUDENTS
from pipeline.teacher.extraction import ExtractionSettings
from pipeline.teacher.model import build_teacher
from stages.extract_teacher import extract_teacher
from stages.train_student import StudentTrainingOptions, train_student


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--students", default=",".join(sorted(STUDENTS)))
    args = parser.parse_args()
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="tkd-bench-"))
    data = work / "data"
    prepare_synth(data, SynthConfig(length=2.0), clips_per_class=(40, 5, 5))
    teacher = work / "teacher"
    model, extractor = build_teacher("whisper-tiny", Manifest.load(data).labels, 2.0)
    model.save_pretrained(teacher)
    extractor.save_pretrained(teacher)
    cache = extract_teacher(data, teacher, work / "cache", ExtractionSettings()).cache_dir
    base = StudentTrainingOptions(
        epochs=args.epochs, batch_size=32, device=args.device, workers=args.workers
    )
    rows = []
    for student in args.students.split(","):
        rates = {}
        for kd in ("none", "attention"):
            options = replace(base, student=student, kd=kd)
            result = train_student(data, work / f"{student}-{kd}", cache, options)
            rates[kd] = result["steps_per_second"]
        rows.append(
            {
                "student": student,
                "steps_per_s_none": rates["none"],
                "steps_per_s_attention": rates["attention"],
                "kd_cost": round(1 - rates["attention"] / rates["none"], 3),
            }
        )
        print(rows[-1])
    device = torch.device(args.device)
    result = {
        "device": str(device),
        "machine": torch.cuda.get_device_name() if device.type == "cuda" else platform.machine(),
        "threads": torch.get_num_threads(),
        "batch_size": 32,
        "clip_seconds": 2.0,
        "dataloader_workers": args.workers,
        "rows": rows,
    }
    save_result(f"student-throughput-{device.type}", result, time.perf_counter() - started)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
