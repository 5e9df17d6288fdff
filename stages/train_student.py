"""`tkd train-student`: train one on-device student from the cached teacher knowledge.

The teacher is never loaded here, nor is ``transformers`` imported (a test enforces it):
one teacher cache serves any number of student runs. A run folder holds the best-on-valid
checkpoint, ``config.json``, ``metrics.json`` and learning curves; an interrupted run
resumes from its last finished epoch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from pipeline.attention_source import AUTO, resolve_attention_source
from pipeline.cache import TeacherCache, parse_attention_source
from pipeline.data.manifest import MANIFEST_FILE, Manifest
from pipeline.errors import CheckpointError, ManifestError, TkdError
from pipeline.files import write_json
from pipeline.fit import Fit, FitResult
from pipeline.student.architectures import (
    DEFAULT_ATTENTION_DIM,
    STUDENTS,
    DistillationModel,
    build_student,
    count_macs,
    count_parameters,
    unknown_options,
)
from pipeline.student.checkpoint import BEST, StudentCheckpoint, load_distillation_model
from pipeline.student.dataset import FeatureBank, StudentDataset, ViewFeatureBank, clip_samples
from pipeline.student.evaluation import evaluate_student
from pipeline.student.features import FeatureConfig
from pipeline.student.losses import (
    DEFAULT_KD_WEIGHT,
    DEFAULT_LOGIT_WEIGHT,
    DEFAULT_TEMPERATURE,
    KD_MODES,
    DistillationLoss,
    LossTerms,
)
from pipeline.student.replay import EpochSampler, ViewReplay
from pipeline.student.spec_augment import SpecAugment
from pipeline.student.targets import DEFAULT_TARGET_MEMORY_MB, TeacherTargets
from pipeline.training import resolve_device, set_seed

VIEW_FEATURES = ("stored", "replayed")
VIEW_OR = " or ".join(VIEW_FEATURES)


@dataclass
class StudentTrainingOptions:
    """``views`` > 1 replays the cache's augmented views: each epoch a training clip plays
    one view in 0..views-1, drawn from (seed, clip id, epoch) (`pipeline.student.replay`),
    with the teacher's targets for that view; valid and test clips stay as they are.
    ``view_features`` "stored" replays every view once into a file beside the dataset's
    features, shared by all runs on the cache; "replayed" rebuilds them as items load.
    ``spec_augment`` masks the training features too (`pipeline.student.spec_augment`).
    ``attention_dim`` sizes the training-only attention head of the students without
    attention of their own (`pipeline.student.architectures.distill`)."""

    student: str = "att-rnn"
    kd: str = "none"
    kd_weight: float = DEFAULT_KD_WEIGHT
    attention_dim: int = DEFAULT_ATTENTION_DIM
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
    views: int = 1
    view_features: str = "stored"
    spec_augment: bool = False
    target_memory_mb: float = DEFAULT_TARGET_MEMORY_MB
    features: FeatureConfig = field(default_factory=FeatureConfig)
    student_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kd not in KD_MODES:
            raise TkdError(f"--kd {self.kd!r} is not one of {', '.join(KD_MODES)}")
        if isinstance(self.features, dict):
            self.features = FeatureConfig(**self.features)
        unknown = self.student in STUDENTS and unknown_options(self.student, self.student_options)
        if unknown:
            raise TkdError(f"{self.student} takes no {', '.join(unknown)} (a student option)")
        try:
            if self.teacher_attention != AUTO:
                parse_attention_source(self.teacher_attention)
        except ValueError as error:
            raise TkdError(f"--teacher-attention: {error}") from None
        for name, value, valid, rule in (
            ("epochs", self.epochs, self.epochs >= 1, "at least 1"),
            ("batch-size", self.batch_size, self.batch_size >= 1, "at least 1"),
            ("lr", self.lr, self.lr > 0, "positive"),
            ("weight-decay", self.weight_decay, self.weight_decay >= 0, "0 or more"),
            ("kd-weight", self.kd_weight, self.kd_weight >= 0, "0 or more"),
            ("attention-dim", self.attention_dim, self.attention_dim >= 1, "at least 1"),
            ("logit-weight", self.logit_weight, 0 <= self.logit_weight <= 1, "in [0, 1]"),
            ("temperature", self.temperature, self.temperature > 0, "positive"),
            ("workers", self.workers, self.workers >= 0, "0 or more"),
            ("patience", self.patience, self.patience is None or self.patience >= 1, "1 or more"),
            ("views", self.views, self.views >= 1, "at least 1"),
            ("view-features", self.view_features, self.view_features in VIEW_FEATURES, VIEW_OR),
            ("target-memory", self.target_memory_mb, self.target_memory_mb >= 0, "0 or more"),
        ):
            if not valid:
                raise TkdError(f"--{name} must be {rule}, got {value}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def reads_cache(options: StudentTrainingOptions) -> bool:
    """Whether a run reads the teacher cache: KD needs its targets, views its parameters."""
    return options.kd != "none" or options.views > 1


def _open_cache(cache: str | Path | None, manifest: Manifest, options: StudentTrainingOptions):
    """The teacher cache: KD reads its targets, views (even without KD) its view parameters."""
    if not reads_cache(options):
        return None
    if cache is None:
        needs = f"--kd {options.kd}" if options.kd != "none" else f"--views {options.views}"
        raise TkdError(f"{needs} needs --cache (a teacher cache from extract-teacher)")
    teacher = TeacherCache(cache)
    teacher.check_matches(
        manifest.ids, list(manifest.labels.names), data_fingerprint=manifest.fingerprint()
    )
    return teacher


# Options that change how a run computes, not what it computes: a run may resume with others.
_HOW = ("device", "workers", "target_memory_mb", "view_features")


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
    # a setting the stored run predates had its default then (new options keep old behaviour)
    defaults = StudentTrainingOptions().to_json()
    differ = [key for key, value in settings.items() if stored.get(key, defaults.get(key)) != value]
    if differ:
        named = {"data_fingerprint": "dataset", "cache_key": "teacher cache"}
        raise TkdError(
            f"{out}: holds a run made with another "
            f"{', '.join(named.get(key, '--' + key.replace('_', '-')) for key in differ)}; "
            "use another --out, or delete it to start over"
        )


def _loader(dataset: StudentDataset, options: StudentTrainingOptions) -> DataLoader:
    """Shuffled batches whose order (and views) depend only on (seed, epoch), so a resumed
    run sees exactly the batches an uninterrupted one would."""
    generator = torch.Generator()
    return DataLoader(
        dataset,
        batch_size=options.batch_size,
        sampler=EpochSampler(len(dataset), generator),
        num_workers=options.workers,
        generator=generator,
        persistent_workers=options.workers > 0,
    )


def _start_epoch(train: DataLoader, seed: int, epoch: int) -> None:
    train.generator.manual_seed(seed * 100_003 + epoch)
    train.sampler.epoch = epoch


def prepare_features(
    data: str | Path, options: list[StudentTrainingOptions], cache: str | Path | None = None
) -> None:
    """Compute the feature banks (and stored view features) these runs will read, once:
    runs started side by side on a dataset without them would each compute the same."""
    manifest = _load_manifest(data)
    for config in dict.fromkeys(run.features for run in options):
        samples = clip_samples(manifest, config.sample_rate)
        FeatureBank(manifest, config, samples)
        stored = {run.views for run in options if run.features == config and _stores_views(run)}
        if stored and cache is not None:
            teacher = TeacherCache(cache)
            for views in stored:
                replay = ViewReplay(manifest, teacher, views, 0, config, samples)
                ViewFeatureBank(replay, manifest.split("train"))
            teacher.close()


def _stores_views(options: StudentTrainingOptions) -> bool:
    return options.views > 1 and options.view_features == "stored"


def train_student(
    data: str | Path,
    out: str | Path,
    cache: str | Path | None = None,
    options: StudentTrainingOptions | None = None,
) -> dict[str, Any]:
    """Train (or resume, or find finished) one student run; returns its metrics."""
    options, out = options or StudentTrainingOptions(), Path(out)
    manifest = _load_manifest(data)
    teacher = _open_cache(cache, manifest, options)
    settings = _run_settings(manifest, teacher, options)
    _refuse_other_run(out, settings)
    if (out / "metrics.json").is_file() and (out / BEST).is_file():
        return json.loads((out / "metrics.json").read_text())
    set_seed(options.seed)
    device, multi_label = resolve_device(options.device), manifest.labels.multi_label
    features, classes = options.features, list(manifest.labels.names)
    bank = FeatureBank(manifest, features, clip_samples(manifest, features.sample_rate))
    student = build_student(options.student, len(classes), features.dim, **options.student_options)
    model = DistillationModel(student, options.attention_dim).to(device)
    train_set, targets = _training_set(
        manifest, bank, teacher, options, student.time_steps(bank.num_frames)
    )
    valid_set = StudentDataset(manifest, manifest.split("valid"), bank)
    train = _loader(train_set, options)
    optimizer, schedule = _optimizer(model, options, len(train))
    loss = DistillationLoss(
        options.kd, options.kd_weight, options.logit_weight, options.temperature, multi_label
    )
    checkpoint = StudentCheckpoint(
        options.student, options.student_options, classes, multi_label, features, bank.samples
    )
    out.mkdir(parents=True, exist_ok=True)
    config = {"data": str(manifest.root), "cache": str(cache) if cache else None}
    source = targets.source if targets is not None else None
    config["teacher_attention_source"] = source
    config["teacher_targets"] = targets.mode if targets is not None else None
    config["spec_augment_policy"] = SpecAugment().to_json() if options.spec_augment else None
    write_json(out / "config.json", {**config, **options.to_json(), **settings})
    fit = Fit(
        model,
        optimizer,
        schedule,
        partial(_distill, model, loss, device),
        partial(_valid_metric, model, valid_set, multi_label, device),
        lambda: checkpoint.save(out / BEST, model.student, model.auxiliary),
        out,
        epochs=options.epochs,
        patience=options.patience,
        on_epoch=partial(_start_epoch, train, options.seed),
        resume=True,
        desc=f"{options.student} {options.kd}",
        advice="try a lower --lr or --kd-weight",
    ).run(train)
    return _finish(out, fit, manifest, bank, options, device, source)


def _training_set(
    manifest: Manifest,
    bank: FeatureBank,
    teacher: TeacherCache | None,
    options: StudentTrainingOptions,
    steps: int,
) -> tuple[StudentDataset, TeacherTargets | None]:
    """The training clips with the teacher's targets (when distilling, from the attention
    source ``auto`` resolves to) and the cached views to replay (when ``views`` > 1)."""
    replay = (
        ViewReplay(manifest, teacher, options.views, options.seed, options.features, bank.samples)
        if options.views > 1
        else None
    )
    train, targets = manifest.split("train"), None
    if options.kd != "none":
        targets = TeacherTargets(
            teacher,
            resolve_attention_source(options.teacher_attention, teacher, manifest),
            [clip.id for clip in train],
            options.views,
            options.target_memory_mb,
        )
    masks = SpecAugment() if options.spec_augment else None
    stored = (
        ViewFeatureBank(replay, train) if replay and options.view_features == "stored" else None
    )
    dataset = StudentDataset(
        manifest, train, bank, targets, steps, replay, masks, options.seed, stored
    )
    return dataset, targets


def _optimizer(
    model: DistillationModel, options: StudentTrainingOptions, batches: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW (decoupled weight decay) with a cosine decay to 2% of ``lr`` over the whole run."""
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=options.lr, weight_decay=options.weight_decay
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=options.epochs * batches, eta_min=options.lr * 0.02
    )
    return optimizer, schedule


def _distill(
    model: DistillationModel,
    loss: DistillationLoss,
    device: torch.device,
    batch: dict[str, torch.Tensor],
) -> LossTerms:
    """One batch's loss; the teacher's targets are in the batch when the run distils.
    A run that does not distil attention runs the bare student: the attention head's
    work would be thrown away (and would hide part of attention KD's cost)."""
    features = batch["features"].to(device)
    if loss.uses_attention:
        output = model(features)
        logits, attention = output.logits, output.attention
    else:
        logits, attention = model.student(features), None
    return loss(
        logits,
        batch["target"].to(device),
        attention,
        batch["teacher_attention"].to(device) if loss.uses_attention else None,
        batch["teacher_logits"].to(device) if loss.uses_logits else None,
    )


def _valid_metric(
    model: DistillationModel, dataset: StudentDataset, multi_label: bool, device: torch.device
) -> tuple[str, float]:
    scores = evaluate_student(model, dataset, multi_label, device)
    return scores["metric"], scores["value"]


def _load_manifest(data: str | Path) -> Manifest:
    manifest = Manifest.load(data)
    for split in ("train", "valid"):
        if not manifest.split(split):
            raise ManifestError(
                manifest.root / MANIFEST_FILE,
                f"the {split!r} split is empty (a student run needs train and valid clips)",
            )
    return manifest


def _finish(
    out: Path,
    fit: FitResult,
    manifest: Manifest,
    bank: FeatureBank,
    options: StudentTrainingOptions,
    device: torch.device,
    source: str | None,
) -> dict[str, Any]:
    """Score the best epoch on valid and test, draw the curves, write ``metrics.json``."""
    model = load_distillation_model(out)[0].to(device)  # the best epoch, with its attention head
    student = model.student
    results: dict[str, Any] = {
        "student": options.student,
        "kd": options.kd,
        "kd_weight": options.kd_weight,
        "teacher_attention": options.teacher_attention,
        "teacher_attention_source": source,  # what "auto" chose
        "seed": options.seed,
        "views": options.views,
        "best_epoch": fit.selection.best_epoch,
        "epochs_run": len(fit.history.epochs),
        "parameters": count_parameters(student),
        "macs": count_macs(student, bank.num_frames, options.features.dim),
        "train_seconds": round(fit.seconds, 2),
        "steps_per_second": round(fit.steps / fit.seconds, 2) if fit.seconds else None,
        "steps_per_cpu_second": round(fit.steps / fit.cpu_seconds, 2) if fit.cpu_seconds else None,
        "device": str(device),
        "history": fit.history.epochs,
    }
    for split in ("valid", "test"):
        clips = manifest.split(split)
        if clips:
            scores = evaluate_student(
                model, StudentDataset(manifest, clips, bank), manifest.labels.multi_label, device
            )
            results["metric"] = scores["metric"]
            results[split] = scores["value"]
            results[f"{split}_in_event_mass"] = scores["in_event_mass"]
    fit.history.plot(out / "curves.png", results["metric"])
    write_json(out / "metrics.json", results)
    return results
