"""Student checkpoints: the inference model's weights plus everything needed to rebuild
and feed it (architecture, classes, front end, input length), in one file.

Only the bare student is saved (no auxiliary attention head), so what ships is exactly
the original architecture.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.errors import CheckpointError
from pipeline.files import write_atomic
from pipeline.student.architectures import DistillationModel, StudentModel, build_student
from pipeline.student.features import FeatureConfig

FORMAT = "tkd-student"
VERSION = 1
BEST = "best.pt"
AUXILIARY = "auxiliary.pt"  # the training-only attention head, kept apart from what ships


@dataclass
class StudentCheckpoint:
    student: str
    student_options: dict[str, Any]
    classes: list[str]
    multi_label: bool
    features: FeatureConfig
    samples: int  # input length the student was trained on

    def build(self) -> StudentModel:
        return build_student(
            self.student, len(self.classes), self.features.dim, **self.student_options
        )

    def save(
        self, path: str | Path, model: StudentModel, auxiliary: nn.Module | None = None
    ) -> None:
        """Write the inference model; the auxiliary head, if any, goes to its own file."""
        payload = {
            "format": FORMAT,
            "version": VERSION,
            "student": self.student,
            "student_options": self.student_options,
            "classes": self.classes,
            "multi_label": self.multi_label,
            "features": self.features.to_json(),
            "samples": self.samples,
            "state_dict": model.state_dict(),
        }
        path = Path(path)
        if auxiliary is not None:
            _save_atomic(auxiliary.state_dict(), path.with_name(AUXILIARY))
        _save_atomic(payload, path)


def _save_atomic(payload: object, path: Path) -> None:
    write_atomic(path, lambda temporary: torch.save(payload, temporary))


def load_student(run: str | Path) -> tuple[StudentModel, StudentCheckpoint]:
    """The trained inference model of a run folder (or a checkpoint file), in eval mode."""
    run = Path(run)
    path = run / BEST if run.is_dir() else run
    if not run.exists():
        raise CheckpointError(run, "does not exist")
    if not path.is_file():
        raise CheckpointError(run, f"is not a finished student run (no {BEST})")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for truncated or foreign files
        raise CheckpointError(
            path, f"unreadable or incomplete checkpoint ({type(error).__name__})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(path, "is not a tkd student checkpoint")
    try:
        checkpoint = StudentCheckpoint(
            student=payload["student"],
            student_options=payload["student_options"],
            classes=payload["classes"],
            multi_label=payload["multi_label"],
            features=FeatureConfig(**payload["features"]),
            samples=payload["samples"],
        )
        model = checkpoint.build()
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(path, f"incomplete or unknown checkpoint ({error})") from None
    try:
        model.load_state_dict(payload.get("state_dict", {}))
    except RuntimeError as error:
        raise CheckpointError(
            path, f"weights do not fit the architecture ({str(error)[:120]})"
        ) from None
    return model.eval(), checkpoint


def load_distillation_model(run: str | Path) -> tuple[DistillationModel, StudentCheckpoint]:
    """The run's student wrapped with its trained attention head, to read its attention.

    Attention students need no head; for the others the head saved beside the checkpoint
    is loaded (runs without attention KD have an untrained head).
    """
    model, checkpoint = load_student(run)
    auxiliary = Path(run) / AUXILIARY
    if model.has_attention or not auxiliary.is_file():
        return DistillationModel(model).eval(), checkpoint
    head = torch.load(auxiliary, weights_only=True)
    wrapped = DistillationModel(model, attention_dim=head["query"].numel())
    wrapped.auxiliary.load_state_dict(head)
    return wrapped.eval(), checkpoint
