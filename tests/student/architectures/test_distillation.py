"""DistillationModel: attention of the right shape, a training-only auxiliary head, and
gradients from the attention loss reaching the student."""

from __future__ import annotations

import pytest
import torch

from pipeline.student.architectures import STUDENTS, DistillationModel, StudentOutput, build_student

NAMES = sorted(STUDENTS)
# torch.jit is deprecated in torch 2.11 but is still what the brief's export path names;
# the RNN tracer warnings are torch's own shape checks, constant for a fixed clip length.
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("frames", [50, 71])
def test_attention_is_a_distribution_over_time_steps(name: str, frames: int) -> None:
    model = DistillationModel(build_student(name, num_classes=6))
    output = model(torch.randn(2, frames, 40))
    assert isinstance(output, StudentOutput)
    assert output.logits.shape == (2, 6)
    assert output.attention.shape == (2, model.student.time_steps(frames))
    assert output.attention.dtype == torch.float32
    assert (output.attention >= 0).all()
    torch.testing.assert_close(output.attention.sum(-1), torch.ones(2))


@pytest.mark.parametrize("name", NAMES)
def test_auxiliary_head_is_not_part_of_the_student(name: str) -> None:
    model = DistillationModel(build_student(name, num_classes=4))
    features = torch.randn(2, 50, 40)
    model(features)
    student = model.student.eval()
    wrapper_keys = set(model.state_dict())
    assert set(student.state_dict()) == {
        k.removeprefix("model.") for k in wrapper_keys if k.startswith("model.")
    }
    has_head = any(k.startswith("auxiliary.") for k in wrapper_keys)
    assert has_head != student.has_attention
    assert all(not m._forward_hooks for m in student.modules()), "hook left behind"
    traced = torch.jit.trace(student, features)
    assert set(traced.state_dict()) == set(student.state_dict())
    assert "auxiliary" not in str(traced.inlined_graph)
    torch.jit.script(student)  # a left-over hook would make this fail


@pytest.mark.parametrize("name", ["lstm-p", "tc-resnet8", "crnn"])
def test_auxiliary_head_learns(name: str) -> None:
    model = DistillationModel(build_student(name, num_classes=4))
    output = model(torch.randn(2, 50, 40))
    target = torch.softmax(torch.randn_like(output.attention), -1)
    kl = torch.nn.functional.kl_div(output.attention.log(), target, reduction="batchmean")
    kl.backward()
    assert model.auxiliary is not None
    for parameter in model.auxiliary.parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_attention_loss_reaches_every_parameter_before_the_head(name: str) -> None:
    torch.manual_seed(0)
    model = DistillationModel(build_student(name, num_classes=4))
    output = model(torch.randn(2, 50, 40))
    target = torch.softmax(torch.randn_like(output.attention), -1)
    torch.nn.functional.kl_div(output.attention.log(), target, reduction="batchmean").backward()
    upstream = {n: p for n, p in model.student.named_parameters() if not n.startswith("head.")}
    assert upstream
    starved = [n for n, p in upstream.items() if p.grad is None or p.grad.abs().sum() == 0]
    assert not starved
