"""count_parameters / count_macs: exact on hand-countable layers, sane on the students."""

from __future__ import annotations

import pytest

from pipeline.student.architectures import STUDENTS, build_student, count_macs, count_parameters
from pipeline.student.architectures.layers import PeepholeLSTM, RecurrentSequence


def test_recurrent_macs_count_every_step() -> None:
    frames, features, units = 10, 4, 3
    gru = RecurrentSequence("gru", features, units)
    assert count_macs(gru, frames, features) == frames * 3 * units * (features + units)
    bilstm = RecurrentSequence("lstm", features, units, num_layers=2, bidirectional=True)
    per_step = 4 * units * (features + units) + 4 * units * (2 * units + units)
    assert count_macs(bilstm, frames, features) == frames * 2 * per_step


def test_peephole_lstm_macs_and_parameters() -> None:
    frames, features, units, proj = 7, 5, 6, 2
    lstm = PeepholeLSTM(features, units, proj)
    per_step = 4 * units * (features + proj) + units * proj
    assert count_macs(lstm, frames, features) == frames * per_step
    # TF LSTMCell(use_peepholes, num_proj): one kernel over [x, h], bias, 3 peepholes, projection
    assert (
        count_parameters(lstm)
        == (features + proj) * 4 * units + 4 * units + 3 * units + units * proj
    )


@pytest.mark.parametrize("name", sorted(STUDENTS))
def test_macs_scale_with_clip_length(name: str) -> None:
    student = build_student(name, num_classes=12)
    short, long = count_macs(student, 50), count_macs(student, 100)
    assert short > 0
    # nearly proportional: only the classifier tail is per clip, and the CRNN's valid
    # convs trim 6 frames (94 / 44 = 2.14)
    assert 1.8 < long / short < 2.2
    assert student.training  # mode restored
