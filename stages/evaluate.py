"""`tkd evaluate` and `tkd plot-attention`: re-measure a trained student, and show where
its attention falls next to the teacher's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from pipeline.cache import TeacherCache
from pipeline.data.manifest import Manifest
from pipeline.errors import CheckpointError, TkdError
from pipeline.files import write_json
from pipeline.student.architectures import DistillationModel
from pipeline.student.checkpoint import StudentCheckpoint, load_distillation_model
from pipeline.student.dataset import FeatureBank, StudentDataset
from pipeline.student.evaluation import evaluate_student
from pipeline.training import resolve_device


def run_manifest(run: Path, data: str | Path | None, checkpoint: StudentCheckpoint) -> Manifest:
    """The dataset to measure on: ``data`` or the run's own; its classes must match."""
    if data is None:
        config = run / "config.json"
        if not config.is_file():
            raise CheckpointError(run, "has no config.json; pass --data")
        data = json.loads(config.read_text())["data"]
    manifest = Manifest.load(data)
    if list(manifest.labels.names) != checkpoint.classes:
        raise TkdError(
            f"{manifest.root}: classes {list(manifest.labels.names)} differ from the run's "
            f"{checkpoint.classes}"
        )
    return manifest


def _loaded(run: str | Path, data, device) -> tuple[DistillationModel, Manifest, FeatureBank]:
    model, checkpoint = load_distillation_model(run)
    manifest = run_manifest(Path(run), data, checkpoint)
    bank = FeatureBank(manifest, checkpoint.features, checkpoint.samples)
    return model.to(device), manifest, bank


def evaluate_run(
    run: str | Path, data: str | Path | None = None, split: str = "test", device: str = "auto"
) -> dict[str, Any]:
    """Metric and in-event attention mass of a run's best checkpoint on a dataset split;
    written to ``<run>/evaluation-<split>.json``."""
    run = Path(run)
    target = resolve_device(device)
    model, manifest, bank = _loaded(run, data, target)
    clips = manifest.split(split)
    if not clips:
        raise TkdError(f"{manifest.root}: the {split!r} split is empty")
    scores = evaluate_student(
        model, StudentDataset(manifest, clips, bank), manifest.labels.multi_label, target
    )
    result = {
        "run": str(run),
        "data": str(manifest.root),
        "split": split,
        "clips": len(clips),
        scores["metric"]: scores["value"],
        "in_event_mass": scores["in_event_mass"],
    }
    write_json(run / f"evaluation-{split}.json", result)
    return result


def plot_attention(
    run: str | Path,
    cache: str | Path,
    clip_id: str,
    out: str | Path,
    data: str | Path | None = None,
) -> Path:
    """Draw the clip's spectrogram with the teacher's and the student's attention over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(run)
    model, manifest, bank = _loaded(run, data, torch.device("cpu"))
    if clip_id not in manifest:
        raise TkdError(f"{manifest.root}: no clip with id {clip_id!r}")
    clip = manifest[clip_id]
    source = json.loads((run / "config.json").read_text()).get("teacher_attention", "rollout")
    teacher = torch.from_numpy(TeacherCache(cache).vector(clip_id, source))
    features = bank[clip_id]
    with torch.no_grad():
        student = model(features[None]).attention[0]
    seconds = bank.samples / bank.config.sample_rate

    figure, axes = plt.subplots(3, 1, figsize=(9, 6), sharex=True)
    axes[0].imshow(
        features.T.numpy(), origin="lower", aspect="auto", extent=(0, seconds, 0, features.shape[1])
    )
    axes[0].set_ylabel("mel band")
    axes[0].set_title(f"{clip_id} ({', '.join(clip.labels)})")
    rows = (
        (axes[1], teacher, clip.duration, f"teacher ({source})"),
        (axes[2], student, seconds, f"student ({model.student.__class__.__name__})"),
    )
    for axis, weights, span, name in rows:  # the teacher's vector covers the real clip only
        times = (torch.arange(len(weights)) + 0.5) * span / len(weights)
        axis.plot(times.numpy(), weights.numpy())
        axis.set_ylabel(name)
    for axis in axes:
        for onset, offset in clip.events:
            axis.axvspan(onset, offset, color="tab:orange", alpha=0.2)
    axes[2].set_xlabel("time (s)")
    figure.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out
