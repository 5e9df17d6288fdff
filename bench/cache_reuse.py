"""Why cache: N student runs against one cache (one extraction + N trainings) vs the same
runs with the teacher running online at every step (a benchmark-only baseline).

Measured once each: E (extraction), S (one cached student run), O (one online run, same
student, epochs and batches, teacher forward + rollout per batch). Runs are identical and
independent, so totals for N runs are E + N·S and N·O; the ratio N·O / (E + N·S) is
reported for N = 1, 5, 20.

    python bench/cache_reuse.py --device cpu
Writes docs/results/cache-reuse-<device>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch
from results_tables import save_result
from torch.utils.data import DataLoader

from pipeline.data.audio import load_audio
from pipeline.data.manifest import Manifest
from pipeline.data.recipes.synth import SynthConfig, prepare_synth
from pipeline.student.architectures import DistillationModel, build_student
from pipeline.student.dataset import FeatureBank, StudentDataset, clip_samples
from pipeline.student.features import FeatureConfig
from pipeline.student.losses import DistillationLoss
from pipeline.teacher.attention import rollout_vectors
from pipeline.teacher.extraction import ExtractionSettings
from pipeline.teacher.model import Teacher, build_teacher
from pipeline.temporal import resample_spans, student_steps_covering
from stages.extract_teacher import extract_teacher
from stages.train_student import StudentTrainingOptions, train_student


def online_run(data: Path, teacher_dir: Path, student: str, epochs: int, device: str) -> float:
    """The same training with the teacher in the loop: what tkd's cache avoids."""
    manifest = Manifest.load(data)
    teacher = Teacher.load(teacher_dir, device)
    config = FeatureConfig()
    bank = FeatureBank(manifest, config, clip_samples(manifest, config.sample_rate))
    model = DistillationModel(build_student(student, len(manifest.labels))).to(device)
    steps = model.student.time_steps(bank.num_frames)
    loss_fn = DistillationLoss("attention", 0.5)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    clips = manifest.split("train")
    loader = DataLoader(StudentDataset(manifest, clips, bank), batch_size=32, shuffle=True)
    start = time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            picked = [clips[i] for i in batch["index"].tolist()]
            waves = [load_audio(manifest.audio_path(c), teacher.sample_rate) for c in picked]
            output = teacher.attend(waves)
            vectors = rollout_vectors(output.maps, output.frames)[:, -1]
            durations = torch.tensor([c.duration for c in picked], dtype=torch.float64)
            covered = student_steps_covering(durations, bank.samples / 16000, steps)
            targets = resample_spans(vectors.cpu(), output.frames.cpu(), covered, steps)
            student_output = model(batch["features"].to(device))
            terms = loss_fn(
                student_output.logits,
                batch["target"].to(device),
                student_output.attention,
                targets.to(device),
            )
            optimizer.zero_grad()
            terms.total.backward()
            optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--teacher", default="whisper-tiny", help="teacher preset (random weights)")
    parser.add_argument("--student", default="tc-resnet8")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="tkd-bench-"))
    data = work / "data"
    prepare_synth(data, SynthConfig(length=2.0), clips_per_class=(40, 5, 5))
    teacher = work / "teacher"
    model, extractor = build_teacher(args.teacher, Manifest.load(data).labels, 2.0)
    model.save_pretrained(teacher)
    extractor.save_pretrained(teacher)

    start = time.perf_counter()
    settings = ExtractionSettings(device=args.device)
    cache = extract_teacher(data, teacher, work / "cache", settings).cache_dir
    extraction = time.perf_counter() - start
    options = StudentTrainingOptions(
        student=args.student,
        kd="attention",
        kd_weight=0.5,
        epochs=args.epochs,
        batch_size=32,
        device=args.device,
    )
    start = time.perf_counter()
    train_student(data, work / "cached-run", cache, options)
    cached = time.perf_counter() - start
    online = online_run(data, teacher, args.student, args.epochs, args.device)
    ratios = {n: round(n * online / (extraction + n * cached), 2) for n in (1, 5, 20)}
    device = torch.device(args.device)
    result = {
        "device": str(device),
        "machine": torch.cuda.get_device_name() if device.type == "cuda" else platform.machine(),
        "teacher": args.teacher,
        "student": args.student,
        "epochs": args.epochs,
        "clips": len(Manifest.load(data)),
        "extraction_s": round(extraction, 2),
        "cached_run_s": round(cached, 2),
        "online_run_s": round(online, 2),
        "online_over_cached": ratios,
        "note": "the cached run includes its evaluation and files; the online loop only trains",
    }
    save_result(f"cache-reuse-{device.type}", result, time.perf_counter() - started)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
