"""Every student can learn a tiny separable task: which third of the clip holds a bump
in one mel band."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pipeline.student.architectures import STUDENTS, DistillationModel, build_student

FRAMES, BANDS, CLASSES = 30, 40, 3


def bump_task(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(count) % CLASSES
    features = 0.3 * torch.randn(count, FRAMES, BANDS, generator=generator)
    third = FRAMES // CLASSES
    for i, label in enumerate(labels.tolist()):
        start = label * third + 2
        features[i, start : start + third - 4, 12] += 3.0
    return features, labels


@pytest.mark.parametrize("name", sorted(STUDENTS))
def test_task_loss_goes_down(name: str) -> None:
    torch.manual_seed(0)
    features, labels = bump_task(24)
    model = DistillationModel(build_student(name, num_classes=CLASSES, feature_dim=BANDS))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(features).logits, labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # training-mode losses: eval mode would judge batch norm's running statistics,
    # which lag far behind the weights after a few dozen steps
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5]), losses
