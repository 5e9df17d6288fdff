import json

import pytest

from pipeline.errors import CheckpointError, TkdError
from stages.evaluate import evaluate_run, plot_attention
from stages.train_student import StudentTrainingOptions, train_student
from tests.builders import copy_dataset


@pytest.fixture(scope="module")
def run(tmp_path_factory, synth_data, teacher_cache):
    out = tmp_path_factory.mktemp("run")
    options = StudentTrainingOptions(
        student="tc-resnet8", kd="attention", epochs=2, batch_size=8, device="cpu"
    )
    train_student(synth_data, out, teacher_cache, options)
    return out


def test_evaluate_remeasures_the_best_checkpoint(run):
    result = evaluate_run(run, split="test", device="cpu")
    metrics = json.loads((run / "metrics.json").read_text())
    assert result["accuracy"] == pytest.approx(metrics["test"])
    assert result["in_event_mass"] == pytest.approx(metrics["test_in_event_mass"])
    assert (run / "evaluation-test.json").is_file()


def test_evaluate_refuses_other_classes_and_non_runs(run, synth_data, tmp_path):
    classes = json.loads((synth_data / "labels.json").read_text())["classes"]
    other = copy_dataset(synth_data, tmp_path / "data", classes=classes[::-1])
    with pytest.raises(TkdError, match="differ from the run"):
        evaluate_run(run, data=other)
    with pytest.raises(CheckpointError, match="not a finished student run"):
        evaluate_run(synth_data)


def test_plot_attention_draws_a_png(run, teacher_cache, synth_data, tmp_path):
    clip_id = json.loads((synth_data / "manifest.jsonl").read_text().splitlines()[0])["id"]
    path = plot_attention(run, teacher_cache, clip_id, tmp_path / "clip.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(TkdError, match="no clip"):
        plot_attention(run, teacher_cache, "nope", tmp_path / "x.png")
