"""What TC-ResNet's docstrings claim about its front end and size."""

from __future__ import annotations

import pytest
import torch

from pipeline.student.architectures import build_student
from pipeline.student.features import TC_RESNET_PAPER, FeatureConfig, FrontEnd

TWO_SECONDS = 32_000


@pytest.mark.parametrize(
    ("config", "frames", "steps"), [(FeatureConfig(), 101, 13), (TC_RESNET_PAPER, 201, 26)]
)
def test_frames_and_time_steps_at_two_seconds(config, frames, steps):
    features = FrontEnd(config)(torch.randn(1, TWO_SECONDS))
    assert features.shape == (1, frames, 40) == (1, config.frames(TWO_SECONDS), config.dim)
    assert build_student("tc-resnet8", 12, config.dim).time_steps(frames) == steps


def test_paper_front_end_is_40_mfccs_over_30_ms_with_10_ms_hop():
    assert (TC_RESNET_PAPER.kind, TC_RESNET_PAPER.dim) == ("mfcc", 40)
    assert (TC_RESNET_PAPER.win_length, TC_RESNET_PAPER.hop_length) == (480, 160)


@pytest.mark.parametrize(("name", "params"), [("tc-resnet8", 65_168), ("tc-resnet14", 135_856)])
def test_parameter_counts_in_the_docstrings(name, params):
    model = build_student(name, 12, 40)
    assert sum(p.numel() for p in model.parameters()) == params
