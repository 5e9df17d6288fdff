import math

import pytest
import torch

from pipeline.student.losses import (
    KD_MODES,
    DistillationLoss,
    LossTerms,
    attention_kd_loss,
    logit_kd_loss,
    task_loss,
)

LN2 = math.log(2)
LN3 = math.log(3)


def close(value: torch.Tensor, expected: float) -> None:
    assert float(value) == pytest.approx(expected, rel=1e-6, abs=1e-7)


# ---- task loss ------------------------------------------------------------------------


def test_cross_entropy_by_hand() -> None:
    # row 1: softmax([0, 0]) = [.5, .5], target 0 -> ln 2
    # row 2: softmax([0, ln 3]) = [.25, .75], target 1 -> -ln .75 = 0.2876821
    logits = torch.tensor([[0.0, 0.0], [0.0, LN3]])
    targets = torch.tensor([0, 1])
    close(task_loss(logits, targets, multi_label=False), (0.6931472 + 0.2876821) / 2)


def test_bce_by_hand() -> None:
    # sigmoid(0) = .5, target 1 -> ln 2; sigmoid(ln 3) = .75, target 0 -> -ln .25 = ln 4
    logits = torch.tensor([[0.0, LN3]])
    targets = torch.tensor([[1.0, 0.0]])
    close(task_loss(logits, targets, multi_label=True), (0.6931472 + 1.3862944) / 2)


def test_task_loss_rejects_mismatched_targets() -> None:
    logits = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="int64"):
        task_loss(logits, torch.zeros(2, 3), multi_label=False)
    with pytest.raises(ValueError, match="int64"):
        task_loss(logits, torch.zeros(3, dtype=torch.int64), multi_label=False)
    with pytest.raises(ValueError, match="match logits"):
        task_loss(logits, torch.zeros(2, dtype=torch.int64), multi_label=True)


# ---- attention KD ---------------------------------------------------------------------


def test_attention_kl_by_hand() -> None:
    # KL([.5, .5] || [.25, .75]) = .5 ln 2 + .5 ln(2/3) = .5 ln(4/3) = 0.1438410
    # KL([1, 0] || [.5, .5]) = ln 2 = 0.6931472 (the teacher's 0 contributes 0)
    teacher = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    student = torch.tensor([[0.25, 0.75], [0.5, 0.5]])
    close(attention_kd_loss(teacher, student), (0.1438410 + 0.6931472) / 2)


def test_attention_kl_is_zero_for_identical_and_floors_student_zeros() -> None:
    p = torch.tensor([[0.1, 0.2, 0.7]])
    close(attention_kd_loss(p, p), 0.0)
    # student 0 where teacher has .5: floored at 1e-8 -> .5 ln .5 + .5 ln(.5 / 1e-8)
    expected = 0.5 * math.log(0.5) + 0.5 * math.log(0.5 / 1e-8)
    loss = attention_kd_loss(torch.tensor([[0.5, 0.5]]), torch.tensor([[1.0, 0.0]]))
    assert math.isfinite(float(loss))
    close(loss, expected)


def test_attention_kl_gradients_finite_with_teacher_zeros() -> None:
    teacher = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
    scores = torch.tensor([[0.0, 200.0, -200.0, 0.0], [1.0, 2.0, 3.0, -100.0]])
    scores.requires_grad_(True)
    student = torch.softmax(scores, dim=-1)  # has probabilities that underflow to 0
    loss = attention_kd_loss(teacher, student)
    loss.backward()
    assert math.isfinite(loss.item())
    assert torch.isfinite(scores.grad).all()


def test_attention_kl_accepts_per_head_attention_and_checks_shapes() -> None:
    teacher = torch.softmax(torch.randn(2, 4, 9), dim=-1)
    student = torch.softmax(torch.randn(2, 4, 9), dim=-1)
    per_row = (teacher * (teacher.log() - student.log())).sum(-1)
    close(attention_kd_loss(teacher, student), float(per_row.mean()))
    with pytest.raises(ValueError, match="resample"):
        attention_kd_loss(teacher, student[..., :5])


# ---- logit KD -------------------------------------------------------------------------


def test_logit_kd_single_label_by_hand() -> None:
    # softmax([0, ln 3]) = [.25, .75]; student softmax([0, 0]) = [.5, .5]
    # KL = .25 ln .5 + .75 ln 1.5 = -0.1732868 + 0.3040988 = 0.1308120
    student = torch.tensor([[0.0, 0.0]])
    close(logit_kd_loss(student, torch.tensor([[0.0, LN3]]), 1.0, multi_label=False), 0.1308120)
    # tau on the teacher only and no tau^2: teacher [0, 2 ln 3] at tau = 2 gives the same
    close(logit_kd_loss(student, torch.tensor([[0.0, 2 * LN3]]), 2.0, multi_label=False), 0.1308120)


def test_logit_kd_single_label_batch_mean() -> None:
    student = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    teacher = torch.tensor([[0.0, LN3], [0.0, 0.0]])  # second row: KL = 0
    close(logit_kd_loss(student, teacher, 1.0, multi_label=False), 0.1308120 / 2)


def test_logit_kd_multi_label_by_hand() -> None:
    # soft targets sigmoid([0, 2 ln 3] / 2) = [.5, .75]
    # class 1: student sigmoid(ln 3) = .75 vs .5 -> -(.5 ln .75 + .5 ln .25) = 0.8369882
    # class 2: student sigmoid(0) = .5 vs .75 -> ln 2 = 0.6931472
    student = torch.tensor([[LN3, 0.0]])
    teacher = torch.tensor([[0.0, 2 * LN3]])
    close(logit_kd_loss(student, teacher, 2.0, multi_label=True), (0.8369882 + 0.6931472) / 2)


def test_logit_kd_gives_teacher_no_gradient_and_checks_inputs() -> None:
    student = torch.randn(3, 5, requires_grad=True)
    teacher = torch.randn(3, 5, requires_grad=True)
    logit_kd_loss(student, teacher, 2.0, multi_label=False).backward()
    assert student.grad is not None and teacher.grad is None
    with pytest.raises(ValueError, match="temperature"):
        logit_kd_loss(student, teacher, 0.0, multi_label=False)
    with pytest.raises(ValueError, match="shapes differ"):
        logit_kd_loss(student, teacher[:, :4], 1.0, multi_label=False)


# ---- composition ----------------------------------------------------------------------


def _inputs(multi_label: bool) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 6, generator=g)
    if multi_label:
        targets = (torch.rand(4, 6, generator=g) > 0.6).float()
    else:
        targets = torch.randint(0, 6, (4,), generator=g)
    return {
        "logits": logits,
        "targets": targets,
        "student_attention": torch.softmax(torch.randn(4, 12, generator=g), -1),
        "teacher_attention": torch.softmax(3 * torch.randn(4, 12, generator=g), -1),
        "teacher_logits": 2 * torch.randn(4, 6, generator=g),
    }


@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("mode", KD_MODES)
def test_composition_matches_formula(mode: str, multi_label: bool) -> None:
    lam, lam_l, tau = 0.1, 0.3, 2.5
    x = _inputs(multi_label)
    terms = DistillationLoss(mode, lam, lam_l, tau, multi_label)(**x)

    task = task_loss(x["logits"], x["targets"], multi_label)
    att = attention_kd_loss(x["teacher_attention"], x["student_attention"])
    dlog = logit_kd_loss(x["logits"], x["teacher_logits"], tau, multi_label)
    expected = {
        "none": task,
        "attention": task + lam * att,
        "logits": lam_l * task + (1 - lam_l) * dlog,
        "both": lam_l * task + (1 - lam_l) * dlog + lam * att,
    }[mode]
    torch.testing.assert_close(terms.total, expected)
    torch.testing.assert_close(terms.task, task)
    if mode in ("attention", "both"):
        torch.testing.assert_close(terms.attention, att)
    else:
        assert terms.attention is None
    if mode in ("logits", "both"):
        torch.testing.assert_close(terms.logits, dlog)
    else:
        assert terms.logits is None


def test_composition_both_by_hand() -> None:
    # task CE([0, 0], 0) = ln 2; logit KL = 0.1308120 (above); attention KL = .5 ln(4/3)
    loss = DistillationLoss("both", kd_weight=0.25, logit_weight=0.5)
    terms = loss(
        logits=torch.tensor([[0.0, 0.0]]),
        targets=torch.tensor([0]),
        student_attention=torch.tensor([[0.25, 0.75]]),
        teacher_attention=torch.tensor([[0.5, 0.5]]),
        teacher_logits=torch.tensor([[0.0, LN3]]),
    )
    close(terms.total, 0.5 * LN2 + 0.5 * 0.1308120 + 0.25 * 0.1438410)


def test_attention_mode_does_not_downweight_task_and_lambda_zero_is_baseline() -> None:
    x = _inputs(False)
    task = task_loss(x["logits"], x["targets"], False)
    torch.testing.assert_close(DistillationLoss("attention", kd_weight=0.0)(**x).total, task)


def test_gradients_reach_student_through_every_term() -> None:
    x = _inputs(False)
    x["logits"].requires_grad_(True)
    scores = torch.randn(4, 12, requires_grad=True)
    x["student_attention"] = torch.softmax(scores, -1)
    x["teacher_attention"][:, :6] = 0.0  # exact zeros in the teacher
    x["teacher_attention"] /= x["teacher_attention"].sum(-1, keepdim=True)
    DistillationLoss("both")(**x).total.backward()
    assert torch.isfinite(x["logits"].grad).all() and torch.isfinite(scores.grad).all()
    assert scores.grad.abs().sum() > 0


def test_validation_messages() -> None:
    with pytest.raises(ValueError, match="none.*attention.*logits.*both"):
        DistillationLoss("hint")
    with pytest.raises(ValueError, match="logit_weight"):
        DistillationLoss("logits", logit_weight=1.5)
    with pytest.raises(ValueError, match="temperature"):
        DistillationLoss("logits", temperature=0.0)
    with pytest.raises(ValueError, match="kd_weight"):
        DistillationLoss("attention", kd_weight=-0.1)
    x = _inputs(False)
    with pytest.raises(ValueError, match="teacher_attention") as info:
        DistillationLoss("attention")(x["logits"], x["targets"], x["student_attention"])
    assert "student_attention" not in str(info.value)
    with pytest.raises(ValueError, match="student_attention, teacher_attention, teacher_logits"):
        DistillationLoss("both")(x["logits"], x["targets"])
    with pytest.raises(ValueError, match="teacher_logits"):
        DistillationLoss("logits")(x["logits"], x["targets"])
    # mode none ignores whatever teacher inputs it is given
    assert DistillationLoss("none")(x["logits"], x["targets"]).attention is None


def test_loss_terms_as_floats() -> None:
    terms = LossTerms(total=torch.tensor(1.5, requires_grad=True), task=torch.tensor(1.0))
    assert terms.as_floats() == {"total": 1.5, "task": 1.0}
    full = LossTerms(torch.tensor(1.0), torch.tensor(2.0), torch.tensor(3.0), torch.tensor(4.0))
    assert full.as_floats() == {"total": 1.0, "task": 2.0, "attention": 3.0, "logits": 4.0}
