"""`tkd finetune-teacher`: make the teacher that stage one distils from.

From scratch (``config``: a preset or JSON file) or from a local pretrained checkpoint
(``init``). The teacher's own input processing is saved beside it and used again,
unchanged, by extraction. Generated datasets can be re-mixed at every step (``remix``).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from pipeline.data.manifest import Clip, Manifest
from pipeline.data.remix import clip_waveform
from pipeline.errors import TkdError
from pipeline.metrics import classification_metric
from pipeline.student.losses import task_loss
from pipeline.teacher.importing import PROVENANCE_FILE, load_source
from pipeline.teacher.model import Teacher, build_teacher
from pipeline.teacher.recipe import teacher_recipe
from pipeline.training import (
    History,
    ModelSelection,
    label_target,
    resolve_device,
    set_seed,
    write_json,
)


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
    """(waveform, target) per clip; a fresh re-mix per draw when ``remix`` is on."""

    def __init__(
        self, manifest: Manifest, clips: list[Clip], sample_rate: int, remix: bool, seed: int
    ):
        self.manifest, self.clips, self.sample_rate = manifest, clips, sample_rate
        self.remix, self.seed = remix, seed
        self.draws = np.zeros(len(clips), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        clip = self.clips[index]
        rng = None
        if self.remix:
            rng = np.random.default_rng([self.seed, index, int(self.draws[index])])
            self.draws[index] += 1
        return clip_waveform(self.manifest, clip, self.sample_rate, rng), label_target(
            self.manifest, clip
        )


def _collate(
    batch: list[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[list[torch.Tensor], torch.Tensor]:
    waves, targets = zip(*batch)
    return list(waves), torch.stack(targets)


@torch.no_grad()
def evaluate_teacher(teacher: Teacher, loader: DataLoader, multi_label: bool) -> tuple[str, float]:
    teacher.model.eval()
    scores, targets = [], []
    for waves, target in loader:
        inputs, _ = teacher.prepare(waves)
        with torch.autocast(
            teacher.device.type, torch.bfloat16, enabled=teacher.device.type == "cuda"
        ):
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
    recipe = teacher_recipe(pretrained=init is not None)
    options = recipe.fill(options or TeacherTrainingOptions())
    tqdm.write(recipe.describe(options), file=sys.stderr)
    manifest = Manifest.load(data)
    set_seed(options.seed)
    device = resolve_device(options.device)
    longest, origin = max(clip.duration for clip in manifest), None
    if config is not None:
        model, extractor = build_teacher(config, manifest.labels, longest)
    else:
        model, extractor, origin = load_source(init, manifest.labels, longest)
    teacher = Teacher(model, extractor, str(device))
    multi_label = manifest.labels.multi_label

    def loader(split: str, train: bool) -> DataLoader:
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

    train_loader, valid_loader = loader("train", True), loader("valid", False)
    steps_per_epoch = len(train_loader)
    total_steps = options.steps or options.epochs * steps_per_epoch
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=options.lr, weight_decay=options.weight_decay
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, options.lr, total_steps=total_steps)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if origin:
        write_json(out / PROVENANCE_FILE, origin)
    selection, history = ModelSelection(options.patience), History()
    started, step, epoch = time.time(), 0, 0
    progress = tqdm(total=total_steps, desc="finetune-teacher", unit="step")
    while step < total_steps and not selection.should_stop:
        model.train()
        losses = []
        for waves, targets in train_loader:
            inputs, _ = teacher.prepare(waves)
            with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(**inputs).logits.float()
            loss = task_loss(logits, targets.to(device), multi_label)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            step += 1
            progress.update()
            progress.set_postfix(loss=f"{loss.item():.3f}")
            if step >= total_steps:
                break
        name, value = evaluate_teacher(teacher, valid_loader, multi_label)
        history.append(
            {
                "epoch": epoch,
                "step": step,
                "train_loss": float(np.mean(losses)),
                f"valid_{name}": value,
            }
        )
        if selection.update(epoch, value):
            model.save_pretrained(out)
            extractor.save_pretrained(out)
        epoch += 1
    progress.close()

    best = Teacher.load(out, str(device))
    results = {
        "metric": name,
        "valid": selection.best,
        "best_epoch": selection.best_epoch,
        "steps": step,
        "wall_seconds": round(time.time() - started, 2),
        "parameters": sum(p.numel() for p in model.parameters()),
        "options": asdict(options),
        "recipe": recipe.name,
        "config": config,
        "init": str(init) if init else None,
        "data": str(manifest.root),
        "history": history.epochs,
    }
    if manifest.split("test"):
        results["test"] = evaluate_teacher(best, loader("test", False), multi_label)[1]
    (out / "labels.json").write_text(json.dumps(manifest.labels.to_json(), indent=2) + "\n")
    write_json(out / "metrics.json", results)
    return results
