import json
import math

import numpy as np

from pipeline.attention_source import choose_attention_source, in_event_mass_report, source_masses
from pipeline.cache import TeacherCache
from pipeline.data.manifest import Manifest
from pipeline.temporal import event_mask
from tests.builders import rewrite_cache


def test_highest_mass_wins_and_nan_never_does():
    masses = {"rollout:1": 0.3, "layer:1": float("nan"), "layer:4": 0.88, "rollout:4": 0.56}
    assert choose_attention_source(masses) == "layer:4"
    assert choose_attention_source({"layer:1": math.nan}) == "rollout"


def test_without_event_times_the_rollout_is_chosen():
    assert source_masses({}) == {}
    assert choose_attention_source({}) == "rollout"


def test_masses_are_keyed_by_teacher_layer_not_stored_position():
    report = {"layers": [2, 4], "rollout": [0.3, 0.4], "attention": [0.5, 0.9]}
    assert source_masses(report) == {
        "rollout:2": 0.3,
        "layer:2": 0.5,
        "rollout:4": 0.4,
        "layer:4": 0.9,
    }


def test_auto_picks_the_localised_layer_of_an_oracle_teacher(synth_data, teacher_cache, tmp_path):
    """Layer 2 of this teacher attends exactly to each event; everything else is flat."""
    manifest = Manifest.load(synth_data)

    def layer_two_on_the_event(source, ids):
        flat = np.full((source.num_layers, source.resolution), 1.0 / source.resolution)
        rollouts, attentions = [], []
        for clip_id in ids:
            clip = manifest[clip_id]
            mask = event_mask(source.resolution, clip.duration, clip.events).numpy()
            attention = flat.copy()
            attention[1] = mask / mask.sum()
            rollouts.append(flat)
            attentions.append(attention)
        return np.stack(rollouts), np.stack(attentions)

    cache = rewrite_cache(teacher_cache, tmp_path / teacher_cache.name, layer_two_on_the_event)
    with TeacherCache(cache) as reader:
        report = in_event_mass_report(reader, manifest)
    assert choose_attention_source(source_masses(report)) == "layer:2"


def test_auto_is_resolved_on_the_training_split_and_recorded(synth_data, oracle_cache, tmp_path):
    from stages.train_student import StudentTrainingOptions, train_student

    options = StudentTrainingOptions(
        student="tc-resnet8", kd="attention", teacher_attention="auto", epochs=1, device="cpu"
    )
    results = train_student(synth_data, tmp_path / "run", oracle_cache, options)
    manifest = Manifest.load(synth_data)
    train = [clip.id for clip in manifest.split("train")]
    expected = choose_attention_source(
        source_masses(in_event_mass_report(TeacherCache(oracle_cache), manifest, train))
    )
    assert results["teacher_attention"] == "auto"
    assert results["teacher_attention_source"] == expected != "auto"
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["teacher_attention_source"] == expected
