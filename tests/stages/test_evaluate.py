import json

import pytest
import torch

from pipeline.data.manifest import Manifest
from pipeline.errors import CheckpointError, TkdError
from pipeline.student.checkpoint import load_distillation_model
from pipeline.student.dataset import FeatureBank
from pipeline.temporal import in_event_mass
from stages.evaluate import evaluate_run, plot_attention
from stages.train_student import StudentTrainingOptions, train_student
from tests.builders import copy_dataset, manifest_lines


@pytest.fixture(scope="module")
def run(tmp_path_factory, synth_data, teacher_cache):
    out = tmp_path_factory.mktemp("run")
    options = StudentTrainingOptions(
        student="tc-resnet8", kd="attention", epochs=2, batch_size=8, device="cpu"
    )
    train_student(synth_data, out, teacher_cache, options)
    return out


def test_evaluate_measures_the_given_data_like_a_hand_count(run, synth_data, tmp_path):
    """The result is checked against the checkpoint run clip by clip, on a copy whose test
    labels are rotated: reading back metrics.json (train_student's own evaluation, the
    same code) or measuring the run's own dataset would not match."""
    classes = json.loads((synth_data / "labels.json").read_text())["classes"]
    lines = manifest_lines(synth_data)
    for line in lines:
        if line["split"] == "test":
            line["labels"] = [classes[(classes.index(line["labels"][0]) + 1) % len(classes)]]
    other = copy_dataset(synth_data, tmp_path / "data", lines)

    model, checkpoint = load_distillation_model(run)
    manifest = Manifest.load(other)
    bank = FeatureBank(manifest, checkpoint.features, checkpoint.samples)
    seconds = checkpoint.samples / checkpoint.features.sample_rate
    hits, masses = [], []
    with torch.no_grad():
        for clip in manifest.split("test"):
            output = model.eval()(bank[clip.id][None])
            hits.append(classes[int(output.logits.argmax())] == clip.labels[0])
            masses.append(float(in_event_mass(output.attention[0], seconds, clip.events)))

    result = evaluate_run(run, data=other, split="test", device="cpu")
    assert result["data"] == str(other) and result["clips"] == len(hits)
    assert result["accuracy"] == pytest.approx(sum(hits) / len(hits))
    assert result["in_event_mass"] == pytest.approx(sum(masses) / len(masses), abs=1e-6)
    assert json.loads((run / "evaluation-test.json").read_text()) == result


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
