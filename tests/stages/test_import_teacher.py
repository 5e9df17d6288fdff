import json

import pytest
import torch
from click.testing import CliRunner

from cli import main
from pipeline.teacher.attention import received_attention, rollout_vectors
from pipeline.teacher.importing import PROVENANCE_FILE
from pipeline.teacher.model import Teacher, teacher_fingerprint
from stages.finetune_teacher import TeacherTrainingOptions, finetune_teacher
from stages.import_teacher import import_teacher
from tests.teacher.whisper_sources import ctranslate2_folder, random_arrays


@pytest.fixture(scope="module")
def ct2_source(tmp_path_factory):
    return ctranslate2_folder(tmp_path_factory.mktemp("ct2"), random_arrays())


def test_cli_import_writes_a_loadable_teacher_that_records_its_source(ct2_source, tmp_path):
    result = CliRunner().invoke(
        main, ["teacher", "import", str(ct2_source), "--out", str(tmp_path), "--seconds", "2"]
    )
    assert result.exit_code == 0, result.output
    teacher = Teacher.load(tmp_path)
    assert teacher.max_samples == 2 * 16000 and teacher.num_layers == 2
    origin = json.loads((tmp_path / PROVENANCE_FILE).read_text())
    assert origin["format"] == "ctranslate2" and origin["source"] == str(ct2_source.resolve())


def test_the_cache_key_covers_where_the_weights_came_from(ct2_source, tmp_path):
    import_teacher(ct2_source, tmp_path / "a", seconds=2)
    import_teacher(ct2_source, tmp_path / "b", seconds=2)
    assert teacher_fingerprint(tmp_path / "a") == teacher_fingerprint(tmp_path / "b")
    origin = json.loads((tmp_path / "b" / PROVENANCE_FILE).read_text())
    origin["source"] = "/elsewhere"
    (tmp_path / "b" / PROVENANCE_FILE).write_text(json.dumps(origin))
    assert teacher_fingerprint(tmp_path / "a") != teacher_fingerprint(tmp_path / "b")


def test_window_and_head_follow_the_data(ct2_source, synth_data, tmp_path):
    import_teacher(ct2_source, tmp_path, data=synth_data)
    teacher = Teacher.load(tmp_path)
    assert teacher.max_samples == 16000 and len(teacher.classes) == 4


def test_an_unknown_source_is_one_line(tmp_path):
    result = CliRunner().invoke(
        main, ["teacher", "import", str(tmp_path), "--out", str(tmp_path / "o"), "--seconds", "2"]
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: {tmp_path}: not a checkpoint folder (no config.json)"
    ]


@torch.no_grad()
def test_padding_in_the_window_gets_no_attention_downstream(ct2_source, tmp_path):
    """A 0.5 s clip in a 2 s window: 25 real frames of 100; rollout and received
    attention put no mass on the 75 padded ones."""
    import_teacher(ct2_source, tmp_path, seconds=2)
    output = Teacher.load(tmp_path).attend([torch.randn(8000) * 0.1])
    assert output.frames.tolist() == [25] and output.maps.shape[-1] == 100
    for vectors in (
        rollout_vectors(output.maps, output.frames),
        received_attention(output.maps, output.frames),
    ):
        assert vectors[..., 25:].abs().max() == 0
        torch.testing.assert_close(vectors.sum(-1), torch.ones(1, 2))


def test_finetune_from_a_pretrained_source_uses_the_pretrained_recipe(
    ct2_source, synth_data, tmp_path
):
    options = TeacherTrainingOptions(steps=2, batch_size=8, patience=None, device="cpu")
    results = finetune_teacher(synth_data, tmp_path, init=ct2_source, options=options)
    assert results["recipe"] == "pretrained" and results["options"]["lr"] == 1e-4
    assert json.loads((tmp_path / PROVENANCE_FILE).read_text())["format"] == "ctranslate2"
    assert Teacher.load(tmp_path).max_samples == 16000
