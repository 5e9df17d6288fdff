"""`tkd finetune-teacher`: make the teacher that stage one distils from.

From scratch (``config``: a preset or JSON file) or from a local pretrained checkpoint
(``init``). The teacher's own input processing is saved beside it and used again,
unchanged, by extraction. Generated datasets can be re-mixed at every step (``remix``).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pipeline.data.manifest import Clip, Manifest
from pipeline.data.remix import clip_waveform
from pipeline.errors import TkdError
from pipeline.files import write_json
from pipeline.fit import Fit, FitResult, autocast
from pipeline.metrics import classification_metric
from pipeline.student.losses import task_loss
from pipeline.teacher.importing import PROVENANCE_FILE, load_source
from pipeline.teacher.model import Teacher, build_teacher
from pipeline.teacher.recipe import teacher_recipe
from pipeline.training import label_target, resolve_device, set_seed


@dataclass
class TeacherTrainingOptions:
    epochs: int | None = None  # None: the recipe's (pipeline/teacher/recipe.py)
    steps: int | None = None  # overrides epochs when set
    batch_size: int = 16
    lr: float | None = None  # None: the recipe's
    weight_decay: float = 0.01
    seed: int = 0
    device: str = "auto"
    remix: bool = False
    patience: int | None = 5
    num_workers: int = 0


class WaveformDataset(Dataset):
    """(waveform, target) per clip; with ``remix``, a fresh mix per clip and epoch.

    The mix is drawn from (seed, clip, epoch), never from a counter, so it is the same
    whichever worker process loads the clip and changes at every ``set_epoch``.
    """

    def __init__(
        self, manifest: Manifest, clips: list[Clip], sample_rate: int, remix: bool, seed: int
    ):
        self.manifest, self.clips, self.sample_rate = manifest, clips, sample_rate
        self.remix, self.seed, self.epoch = remix, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        clip = self.clips[index]
        rng = np.random.default_rng([self.seed, index, self.epoch]) if self.remix else None
        return clip_waveform(self.manifest, clip, self.sample_rate, rng), label_target(
            self.manifest, clip
        )


def _collate(
    batch: list[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[list[torch.Tensor], torch.Tensor]:
    waves, targets = zip(*batch)
    return list(waves), torch.stack(targets)


def _loader(
    manifest: Manifest, split: str, teacher: Teacher, options: TeacherTrainingOptions, train: bool
) -> DataLoader:
    clips = manifest.split(split)
    if not clips:
        raise TkdError(f"{manifest.root}: the {split!r} split is empty")
    dataset = WaveformDataset(
        manifest, clips, teacher.sample_rate, train and options.remix, options.seed
    )
    return DataLoader(
        dataset,
        batch_size=options.batch_size,
        shuffle=train,
        collate_fn=_collate,
        num_workers=options.num_workers,
        generator=torch.Generator().manual_seed(options.seed),
    )


@torch.no_grad()
def evaluate_teacher(teacher: Teacher, loader: DataLoader, multi_label: bool) -> tuple[str, float]:
    teacher.model.eval()
    scores, targets = [], []
    for waves, target in loader:
        inputs, _ = teacher.prepare(waves)
        with autocast(teacher.device):
            scores.append(teacher.model(**inputs).logits.float().cpu())
        targets.append(target)
    return classification_metric(torch.cat(scores), torch.cat(targets), multi_label)


def finetune_teacher(
    data: str | Path,
    out: str | Path,
    config: str | None = None,
    init: str | Path | None = None,
    options: TeacherTrainingOptions | None = None,
) -> dict:
    """Train a teacher on ``data`` and save it to ``out``; returns the metrics written."""
    if (config is None) == (init is None):
        raise TkdError("give exactly one of --config (from scratch) or --init (local checkpoint)")
    recipe, started = teacher_recipe(pretrained=init is not None), time.time()
    options = recipe.fill(options or TeacherTrainingOptions())
    print(recipe.describe(options), file=sys.stderr)
    manifest, out = Manifest.load(data), Path(out)
    set_seed(options.seed)
    device, multi_label = resolve_device(options.device), manifest.labels.multi_label
    longest, origin = max(clip.duration for clip in manifest), None
    if config is not None:
        model, extractor = build_teacher(config, manifest.labels, longest)
    else:
        model, extractor, origin = load_source(init, manifest.labels, longest)
    teacher = Teacher(model, extractor, str(device))
    train = _loader(manifest, "train", teacher, options, train=True)
    valid = _loader(manifest, "valid", teacher, options, train=False)
    total_steps = options.steps or options.epochs * len(train)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=options.lr, weight_decay=options.weight_decay
    )
    out.mkdir(parents=True, exist_ok=True)
    if origin:
        write_json(out / PROVENANCE_FILE, origin)
    fit = Fit(
        model,
        optimizer,
        torch.optim.lr_scheduler.OneCycleLR(optimizer, options.lr, total_steps=total_steps),
        partial(_task_loss, teacher, multi_label),
        partial(evaluate_teacher, teacher, valid, multi_label),
        partial(_save, teacher, out),
        out,
        epochs=math.ceil(total_steps / len(train)),
        steps=total_steps,
        patience=options.patience,
        clip_grad=1.0,
        on_epoch=train.dataset.set_epoch,
        desc="finetune-teacher",
    ).run(train)
    results = _results(fit, model, config, init, manifest, options, started)
    results["recipe"] = recipe.name
    if manifest.split("test"):
        best = Teacher.load(out, str(device))
        test = _loader(manifest, "test", teacher, options, train=False)
        results["test"] = evaluate_teacher(best, test, multi_label)[1]
    write_json(out / "labels.json", manifest.labels.to_json())
    write_json(out / "metrics.json", results)
    return results


def _task_loss(
    teacher: Teacher, multi_label: bool, batch: tuple[list[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    inputs, _ = teacher.prepare(batch[0])
    with autocast(teacher.device):
        logits = teacher.model(**inputs).logits.float()
    return task_loss(logits, batch[1].to(teacher.device), multi_label)


def _save(teacher: Teacher, out: Path) -> None:
    """The best teacher so far, as a standard ``save_pretrained`` folder with its processing."""
    teacher.model.save_pretrained(out)
    teacher.extractor.save_pretrained(out)


def _results(
    fit: FitResult,
    model: torch.nn.Module,
    config: str | None,
    init: str | Path | None,
    manifest: Manifest,
    options: TeacherTrainingOptions,
    started: float,
) -> dict:
    return {
        "metric": fit.metric,
        "valid": fit.selection.best,
        "best_epoch": fit.selection.best_epoch,
        "steps": fit.steps,
        "wall_seconds": round(time.time() - started, 2),
        "parameters": sum(p.numel() for p in model.parameters()),
        "options": asdict(options),
        "config": config,
        "init": str(init) if init else None,
        "data": str(manifest.root),
        "history": fit.history.epochs,
    }
