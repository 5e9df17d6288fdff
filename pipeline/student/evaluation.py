"""Measuring a student: its task metric and where its attention falls in time."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from pipeline.metrics import classification_metric
from pipeline.student.architectures import DistillationModel
from pipeline.student.dataset import StudentDataset
from pipeline.temporal import in_event_mass


@torch.no_grad()
def evaluate_student(
    model: DistillationModel,
    dataset: StudentDataset,
    multi_label: bool,
    device: torch.device,
    batch_size: int = 128,
) -> dict[str, float | str | None]:
    """Task metric, and the mean share of the student's attention inside labelled events.

    For students without attention the share is that of the training-only auxiliary head
    (untrained, hence near uniform, in runs without attention KD).
    """
    model.eval()
    scores, targets, masses = [], [], []
    for batch in DataLoader(dataset, batch_size=batch_size):
        output = model(batch["features"].to(device))
        scores.append(output.logits.float().cpu())
        targets.append(batch["target"])
        for row, index in enumerate(batch["index"].tolist()):
            clip = dataset.clips[index]
            if clip.events:
                attention = output.attention[row].float().cpu()
                masses.append(float(in_event_mass(attention, dataset.padded_seconds, clip.events)))
    name, value = classification_metric(torch.cat(scores), torch.cat(targets), multi_label)
    return {
        "metric": name,
        "value": value,
        "in_event_mass": sum(masses) / len(masses) if masses else None,
    }
