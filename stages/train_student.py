"""`tkd train-student`: train one on-device student from the cached teacher knowledge.

The teacher is never loaded here, nor is ``transformers`` imported (a test enforces it):
one teacher cache serves any number of student runs. A run folder holds the best-on-valid
checkpoint, ``config.json``, ``metrics.json`` and learning curves; an interrupted run
resumes from its last finished epoch.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from pipeline.cache import TeacherCache, parse_attention_source
from pipeline.data.manifest import MANIFEST_FILE, Manifest
from pipeline.errors import CheckpointError, ManifestError, TkdError
from pipeline.student.architectures import (
    DistillationModel,
    build_student,
    count_macs,
    count_parameters,
)
from pipeline.student.checkpoint import (
    BEST,
    StudentCheckpoint,
    _save_atomic,
    load_distillation_model,
)
from pipeline.student.dataset import FeatureBank, StudentDataset, clip_samples
from pipeline.student.evaluation import evaluate_student
from pipeline.student.features import FeatureConfig
from pipeline.student.losses import (
    DEFAULT_KD_WEIGHT,
    DEFAULT_LOGIT_WEIGHT,
    DEFAULT_TEMPERATURE,
    KD_MODES,
    DistillationLoss,
)
from pipeline.training import History, ModelSelection, resolve_device, set_seed, write_json

LAST = "last.pt"


@dataclass
class StudentTrainingOptions:
    student: str = "att-rnn"
    kd: str = "none"
    kd_weight: float = DEFAULT_KD_WEIGHT
    logit_weight: float = DEFAULT_LOGIT_WEIGHT
    temperature: float = DEFAULT_TEMPERATURE
    teacher_attention: str = "rollout"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    patience: int | None = None
    features: FeatureConfig = field(default_factory=FeatureConfig)
    student_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kd not in KD_MODES:
            raise TkdError(f"--kd {self.kd!r} is not one of {', '.join(KD_MODES)}")
        if isinstance(self.features, dict):
            self.features = FeatureConfig(**self.features)
        try:
            parse_attention_source(self.teacher_attention)
        except ValueError as error:
            raise TkdError(f"--teacher-attention: {error}") from None
        for name, value, valid, rule in (
            ("epochs", self.epochs, self.epochs >= 1, "at least 1"),
            ("batch-size", self.batch_size, self.batch_size >= 1, "at least 1"),
            ("lr", self.lr, self.lr > 0, "positive"),
            ("weight-decay", self.weight_decay, self.weight_decay >= 0, "0 or more"),
            ("kd-weight", self.kd_weight, self.kd_weight >= 0, "0 or more"),
            ("logit-weight", self.logit_weight, 0 <= self.logit_weight <= 1, "in [0, 1]"),
            ("temperature", self.temperature, self.temperature > 0, "positive"),
            ("workers", self.workers, self.workers >= 0, "0 or more"),
            ("patience", self.patience, self.patience is None or self.patience >= 1, "1 or more"),
        ):
            if not valid:
                raise TkdError(f"--{name} must be {rule}, got {value}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _open_cache(cache: str | Path | None, manifest: Manifest, options: StudentTrainingOptions):
    if options.kd == "none":
        return None
    if cache is None:
        raise TkdError(f"--kd {options.kd} needs --cache (a teacher cache from extract-teacher)")
    teacher = TeacherCache(cache)
    teacher.check_matches(
        manifest.ids, list(manifest.labels.names), data_fingerprint=manifest.fingerprint()
    )
    return teacher


# Options that change how a run computes, not what it computes: a run may resume with others.
_HOW = ("device", "workers")


def _run_settings(
    manifest: Manifest, teacher: TeacherCache | None, options: StudentTrainingOptions
) -> dict[str, Any]:
    """What a run's results depend on, as JSON: resuming or reusing a run made with other
    settings would silently mix two experiments."""
    settings = {k: v for k, v in options.to_json().items() if k not in _HOW}
    settings["data_fingerprint"] = manifest.fingerprint()
    settings["cache_key"] = teacher.index.key if teacher is not None else None
    return json.loads(json.dumps(settings))


def _refuse_other_run(out: Path, settings: dict[str, Any]) -> None:
    """A run folder holding a run (finished or not) made with other settings is refused."""
    config = out / "config.json"
    if not config.is_file():
        return
    try:
        stored = json.loads(config.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise CheckpointError(
            config, f"unreadable ({error}); delete the run to start over"
        ) from None
    if not isinstance(stored, dict) or "data_fingerprint" not in stored:
        return  # written before runs recorded their settings
    differ = [key for key, value in settings.items() if stored.get(key) != value]
    if differ:
        named = {"data_fingerprint": "dataset", "cache_key": "teacher cache"}
        raise TkdError(
            f"{out}: holds a run made with another "
            f"{', '.join(named.get(key, '--' + key.replace('_', '-')) for key in differ)}; "
            "use another --out, or delete it to start over"
        )


def _loader(dataset: StudentDataset, options: StudentTrainingOptions) -> DataLoader:
    """Shuffled batches whose order depends only on (seed, epoch), so a resumed run
    sees exactly the batches an uninterrupted one would."""
    return DataLoader(
        dataset,
        batch_size=options.batch_size,
        shuffle=True,
        num_workers=options.workers,
        generator=torch.Generator(),
        persistent_workers=options.workers > 0,
    )


def train_student(
    data: str | Path,
    out: str | Path,
    cache: str | Path | None = None,
    options: StudentTrainingOptions | None = None,
) -> dict[str, Any]:
    """Train (or resume, or find finished) one student run; returns its metrics."""
    options = options or StudentTrainingOptions()
    out = Path(out)
    manifest = Manifest.load(data)
    for split in ("train", "valid"):
        if not manifest.split(split):
            raise ManifestError(
                manifest.root / MANIFEST_FILE,
                f"the {split!r} split is empty (a student run needs train and valid clips)",
            )
    teacher = _open_cache(cache, manifest, options)
    settings = _run_settings(manifest, teacher, options)
    _refuse_other_run(out, settings)
    finished = out / "metrics.json"
    if finished.is_file() and (out / BEST).is_file():
        return json.loads(finished.read_text())
    set_seed(options.seed)
    device = resolve_device(options.device)
    multi_label = manifest.labels.multi_label
    bank = FeatureBank(
        manifest, options.features, clip_samples(manifest, options.features.sample_rate)
    )
    student = build_student(
        options.student, len(manifest.labels), options.features.dim, **options.student_options
    )
    model = DistillationModel(student).to(device)
    steps = student.time_steps(bank.num_frames)
    train_set = StudentDataset(
        manifest, manifest.split("train"), bank, teacher, options.teacher_attention, steps
    )
    valid_set = StudentDataset(manifest, manifest.split("valid"), bank)
    train_loader = _loader(train_set, options)
    loss_fn = DistillationLoss(
        options.kd, options.kd_weight, options.logit_weight, options.temperature, multi_label
    )
    optimizer = torch.optim.Adam(
        model.parameters(), lr=options.lr, weight_decay=options.weight_decay
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=options.epochs * len(train_loader), eta_min=options.lr * 0.02
    )
    checkpoint = StudentCheckpoint(
        options.student,
        options.student_options,
        list(manifest.labels.names),
        multi_label,
        options.features,
        bank.samples,
    )
    selection, history = ModelSelection(options.patience), History()
    out.mkdir(parents=True, exist_ok=True)
    write_json(
        out / "config.json",
        {
            "data": str(manifest.root),
            "cache": str(cache) if cache else None,
            **options.to_json(),
            **settings,
        },
    )
    start_epoch, train_seconds, train_steps = 0, 0.0, 0
    if (out / LAST).is_file():
        try:
            state = torch.load(out / LAST, weights_only=False)
        except Exception as error:  # torch raises many types for damaged files
            raise CheckpointError(
                out / LAST,
                f"unreadable ({type(error).__name__}); delete it to restart the run from scratch",
            ) from None
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        selection.load_state_dict(state["selection"])
        history.epochs = state["history"]
        torch.set_rng_state(state["rng"])
        start_epoch, train_seconds, train_steps = (
            state["epoch"] + 1,
            state["seconds"],
            state["steps"],
        )

    for epoch in range(start_epoch, options.epochs):
        if selection.should_stop:
            break
        model.train()
        train_loader.generator.manual_seed(options.seed * 100_003 + epoch)
        losses: list[dict[str, float]] = []
        tick = time.time()
        bar = tqdm(
            train_loader,
            desc=f"{options.student} {options.kd} epoch {epoch + 1}/{options.epochs}",
            unit="batch",
            leave=False,
        )
        for batch in bar:
            output = model(batch["features"].to(device))
            teacher_attention = batch["teacher_attention"].to(device) if teacher else None
            teacher_logits = batch["teacher_logits"].to(device) if teacher else None
            terms = loss_fn(
                output.logits,
                batch["target"].to(device),
                output.attention,
                teacher_attention,
                teacher_logits,
            )
            if not torch.isfinite(terms.total):
                raise TkdError(
                    f"{out}: loss became {terms.total.item()} at epoch {epoch + 1}; stopped before "
                    f"writing a checkpoint (try a lower --lr or --kd-weight)"
                )
            optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            optimizer.step()
            schedule.step()
            losses.append(terms.as_floats())
            bar.set_postfix(loss=f"{terms.total.item():.3f}")
        train_seconds += time.time() - tick
        train_steps += len(train_loader)
        if not all(torch.isfinite(p).all() for p in model.parameters()):
            raise TkdError(
                f"{out}: weights became non-finite in epoch {epoch + 1}; stopped before writing "
                "a checkpoint (try a lower --lr or --kd-weight)"
            )
        valid = evaluate_student(model, valid_set, multi_label, device)
        record = {"epoch": epoch, "valid_" + valid["metric"]: valid["value"]}
        for name in losses[0]:
            record[f"train_{name}" if name != "total" else "train_loss"] = float(
                np.mean([x[name] for x in losses])
            )
        history.append(record)
        if selection.update(epoch, valid["value"]):
            checkpoint.save(out / BEST, model.student, model.auxiliary)
        _save_atomic(  # a kill mid-write must not leave half a resume point
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "selection": selection.state_dict(),
                "history": history.epochs,
                "rng": torch.get_rng_state(),
                "epoch": epoch,
                "seconds": train_seconds,
                "steps": train_steps,
            },
            out / LAST,
        )

    model = load_distillation_model(out)[0].to(device)  # the best epoch, with its attention head
    results: dict[str, Any] = {
        "student": options.student,
        "kd": options.kd,
        "kd_weight": options.kd_weight,
        "teacher_attention": options.teacher_attention,
        "seed": options.seed,
        "best_epoch": selection.best_epoch,
        "epochs_run": len(history.epochs),
        "parameters": count_parameters(student),
        "macs": count_macs(student, bank.num_frames, options.features.dim),
        "train_seconds": round(train_seconds, 2),
        "steps_per_second": round(train_steps / train_seconds, 2) if train_seconds else None,
        "device": str(device),
        "history": history.epochs,
    }
    for split in ("valid", "test"):
        clips = manifest.split(split)
        if clips:
            scores = evaluate_student(
                model, StudentDataset(manifest, clips, bank), multi_label, device
            )
            results["metric"] = scores["metric"]
            results[split] = scores["value"]
            results[f"{split}_in_event_mass"] = scores["in_event_mass"]
    history.plot(out / "curves.png", results["metric"])
    write_json(finished, results)
    return results
