"""Training losses: the task loss, temporal attention KD (Choi et al. 2022) and logit KD
(CMKD, Gong et al. 2022), and their composition for every distillation mode.

Small functions each tested against hand-computed values (torchdistill style); the
``DistillationLoss`` composition is the one place the weighting formulas live.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

KD_MODES = ("none", "attention", "logits", "both")
# The weights' one home (options, CLI and sweep defaults all read these): lambda of the
# attention KL, the paper's lambda grid swept per student, CMKD's lambda_l and temperature.
DEFAULT_KD_WEIGHT = 0.25
KD_WEIGHT_GRID = (0.1, DEFAULT_KD_WEIGHT, 0.5)
DEFAULT_LOGIT_WEIGHT = 0.5
DEFAULT_TEMPERATURE = 1.0

# Floor on student probabilities in the attention KL: a student weight that underflows to
# 0 would otherwise make log(q) = -inf and the loss infinite.
_PROB_FLOOR = 1e-8


def task_loss(logits: Tensor, targets: Tensor, multi_label: bool) -> Tensor:
    """Cross-entropy on int64 class targets ``[B]``, or BCE-with-logits on multi-hot
    targets ``[B, C]`` (mean over batch and classes, as EfficientAT / FSD50K recipes).

    Target dtype and shape are checked because ``F.cross_entropy`` silently accepts
    float targets as class probabilities, which would hide a multi-label mix-up.
    """
    if multi_label:
        if targets.shape != logits.shape:
            raise ValueError(
                f"multi-label targets must match logits {tuple(logits.shape)}, "
                f"got {tuple(targets.shape)}"
            )
        return F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype))
    if targets.dtype != torch.int64 or targets.shape != logits.shape[:1]:
        raise ValueError(
            f"single-label targets must be int64 of shape {tuple(logits.shape[:1])}, "
            f"got {targets.dtype} {tuple(targets.shape)}"
        )
    return F.cross_entropy(logits, targets)


def attention_kd_loss(teacher: Tensor, student: Tensor) -> Tensor:
    """KL(teacher ‖ student) over time (last dim), mean over the leading dims.

    Both are distributions ``[B, T]`` (or ``[B, H, T]`` for per-head student attention).
    Teacher zeros contribute 0 (0·log 0 = 0, via ``xlogy``); student probabilities are
    floored at 1e-8 so a vanishing student weight gives a large but finite loss and
    finite gradients. The teacher is a fixed target and receives no gradient.
    """
    if teacher.shape != student.shape:
        raise ValueError(
            f"teacher {tuple(teacher.shape)} and student {tuple(student.shape)} attention "
            "shapes differ; resample the teacher to the student's length first"
        )
    p = teacher.detach().to(student.dtype)
    q = student.clamp_min(_PROB_FLOOR)
    kl = torch.xlogy(p, p) - p * torch.log(q)
    return kl.sum(dim=-1).mean()


def logit_kd_loss(
    student_logits: Tensor, teacher_logits: Tensor, temperature: float, multi_label: bool
) -> Tensor:
    """CMKD logit distillation: temperature on the teacher only, no tau^2 factor.

    Single-label: KL(softmax(z_t / tau) ‖ softmax(z_s)), batch mean (the direction of
    ``F.kl_div(log_softmax(z_s), softmax(z_t / tau))``). Multi-label: BCE-with-logits of
    the student against sigmoid(z_t / tau) soft targets, mean over batch and classes, as
    EfficientAT does (KL per class up to the teacher's entropy, a constant).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student {tuple(student_logits.shape)} and teacher {tuple(teacher_logits.shape)} "
            "logit shapes differ"
        )
    soft = teacher_logits.detach().to(student_logits.dtype) / temperature
    if multi_label:
        return F.binary_cross_entropy_with_logits(student_logits, torch.sigmoid(soft))
    return F.kl_div(
        F.log_softmax(student_logits, dim=-1),
        F.log_softmax(soft, dim=-1),
        reduction="batchmean",
        log_target=True,
    )


@dataclass
class LossTerms:
    """The total loss and its parts (unweighted), kept apart for logging."""

    total: Tensor
    task: Tensor
    attention: Tensor | None = None
    logits: Tensor | None = None

    def as_floats(self) -> dict[str, float]:
        """Python floats of the terms that were computed (absent terms are left out)."""
        terms = {
            "total": self.total,
            "task": self.task,
            "attention": self.attention,
            "logits": self.logits,
        }
        return {name: float(t.detach()) for name, t in terms.items() if t is not None}


@dataclass(frozen=True)
class DistillationLoss:
    """The training objective for each KD mode.

    - ``none``:      L = task
    - ``attention``: L = task + lambda * KL(a_T ‖ a_S)  (paper A, Choi et al.). The task
      term is *not* weighted by (1 - lambda): the paper does not state such a weight, and
      lambda = 0 must reduce to the baseline.
    - ``logits``:    L = lambda_l * task + (1 - lambda_l) * D_logit  (CMKD)
    - ``both``:      L = lambda_l * task + (1 - lambda_l) * D_logit + lambda * KL(a_T ‖ a_S)

    ``kd_weight`` is lambda, ``logit_weight`` is CMKD's lambda_l.
    """

    mode: str = "none"
    kd_weight: float = DEFAULT_KD_WEIGHT
    logit_weight: float = DEFAULT_LOGIT_WEIGHT
    temperature: float = DEFAULT_TEMPERATURE
    multi_label: bool = False

    def __post_init__(self) -> None:
        if self.mode not in KD_MODES:
            raise ValueError(f"unknown KD mode {self.mode!r}; use one of {KD_MODES}")
        if self.kd_weight < 0:
            raise ValueError(f"kd_weight must be >= 0, got {self.kd_weight}")
        if not 0 <= self.logit_weight <= 1:
            raise ValueError(f"logit_weight must be in [0, 1], got {self.logit_weight}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")

    @property
    def uses_attention(self) -> bool:
        return self.mode in ("attention", "both")

    @property
    def uses_logits(self) -> bool:
        return self.mode in ("logits", "both")

    def __call__(
        self,
        logits: Tensor,
        targets: Tensor,
        student_attention: Tensor | None = None,
        teacher_attention: Tensor | None = None,
        teacher_logits: Tensor | None = None,
    ) -> LossTerms:
        """Compute every term the mode needs; teacher inputs it does not need are ignored."""
        given = {
            "student_attention": student_attention,
            "teacher_attention": teacher_attention,
            "teacher_logits": teacher_logits,
        }
        needed = []
        if self.uses_attention:
            needed += ["student_attention", "teacher_attention"]
        if self.uses_logits:
            needed.append("teacher_logits")
        missing = [name for name in needed if given[name] is None]
        if missing:
            raise ValueError(f"KD mode {self.mode!r} needs {', '.join(missing)}")

        task = task_loss(logits, targets, self.multi_label)
        total = task
        attention = logit_term = None
        if self.uses_logits:
            logit_term = logit_kd_loss(logits, teacher_logits, self.temperature, self.multi_label)
            total = self.logit_weight * task + (1 - self.logit_weight) * logit_term
        if self.uses_attention:
            attention = attention_kd_loss(teacher_attention, student_attention)
            total = total + self.kd_weight * attention
        return LossTerms(total=total, task=task, attention=attention, logits=logit_term)
