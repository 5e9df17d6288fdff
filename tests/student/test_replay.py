"""train-student --views K: each epoch a training clip replays one cached teacher view."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pipeline.cache import TeacherCache
from pipeline.data.audio import fit_length
from pipeline.data.manifest import Manifest
from pipeline.data.views import view_source
from pipeline.errors import TkdError
from pipeline.student.dataset import FeatureBank, StudentDataset, ViewFeatureBank, clip_samples
from pipeline.student.features import FeatureConfig, FrontEnd
from pipeline.student.replay import ViewReplay, drawn_view
from pipeline.student.targets import DEFAULT_TARGET_MEMORY_MB, TeacherTargets
from pipeline.temporal import to_student_steps
from pipeline.training import label_target
from stages.train_student import StudentTrainingOptions, _loader, _start_epoch, train_student
from tests.builders import copy_dataset, manifest_lines

CONFIG = FeatureConfig()
STEPS = 25


@pytest.fixture(scope="module", params=[DEFAULT_TARGET_MEMORY_MB, 0], ids=["memory", "streamed"])
def replayed(views_data, views_cache, request):
    """The training set of ``views_data`` replaying its cache's 3 views, with KD targets
    held in memory or read from the shards."""
    manifest = Manifest.load(views_data)
    cache = TeacherCache(views_cache)
    bank = FeatureBank(manifest, CONFIG, clip_samples(manifest, CONFIG.sample_rate))
    replay = ViewReplay(manifest, cache, 3, 7, CONFIG, bank.samples)
    clips = manifest.split("train")
    targets = TeacherTargets(cache, "layer:2", [c.id for c in clips], 3, request.param)
    assert targets.in_memory == (request.param > 0)
    dataset = StudentDataset(manifest, clips, bank, targets, STEPS, replay)
    yield manifest, cache, bank, dataset
    cache.close()


def test_the_view_drawn_per_clip_and_epoch_is_deterministic_and_varies():
    ids = [f"clip-{n}" for n in range(8)]
    draws = [[drawn_view(7, i, epoch, 3) for epoch in range(12)] for i in ids]
    assert draws == [[drawn_view(7, i, epoch, 3) for epoch in range(12)] for i in ids]
    assert all(set(row) == {0, 1, 2} for row in draws), draws  # every view, over epochs
    assert len({tuple(row) for row in draws}) == len(ids)  # clips draw independently
    assert draws != [[drawn_view(8, i, epoch, 3) for epoch in range(12)] for i in ids]
    assert {drawn_view(7, i, epoch, 1) for i in ids for epoch in range(12)} == {0}


def test_a_replayed_views_features_and_targets_are_that_views(replayed):
    manifest, cache, bank, dataset = replayed
    front_end, seen = FrontEnd(CONFIG), set()
    for epoch in range(4):
        batch = dataset.__getitems__([(i, epoch) for i in range(len(dataset))])
        for position, item in enumerate(batch):
            clip = dataset.clips[position]
            view = drawn_view(7, clip.id, epoch, 3)
            assert item["view"].item() == view
            seen.add(view)
            wave = view_source(manifest, cache.params(clip.id, view)).wave(CONFIG.sample_rate)
            with torch.no_grad():
                expected = front_end(fit_length(wave, bank.samples)[None])[0]
            torch.testing.assert_close(item["features"], expected)
            assert torch.equal(item["features"], bank[clip.id]) == (view == 0)
            vector = torch.from_numpy(cache.vector(clip.id, "layer:2", view))[None]
            duration = torch.tensor([clip.duration], dtype=torch.float64)
            target = to_student_steps(vector, duration, dataset.padded_seconds, STEPS)[0]
            torch.testing.assert_close(item["teacher_attention"], target)
            assert np.array_equal(item["teacher_logits"].numpy(), cache.logits(clip.id, view))
            # single-label: a mix view keeps the clip's own label
            assert torch.equal(item["target"], label_target(manifest, clip))
    assert seen == {0, 1, 2}


def test_stored_view_features_are_the_replayed_ones_read_from_one_file(replayed, monkeypatch):
    manifest, cache, bank, dataset = replayed
    stored = ViewFeatureBank(dataset.replay, dataset.clips)
    files = sorted((manifest.root / ".features").glob("views-*.pt"))
    assert len(files) == 1 and stored.features.shape[:2] == (len(dataset.clips), 2)
    reading = replace_view_bank(dataset, stored)
    for epoch in range(4):
        indices = [(i, epoch) for i in range(len(dataset))]
        for item, expected in zip(
            reading.__getitems__(indices), dataset.__getitems__(indices), strict=True
        ):
            assert item["view"] == expected["view"]
            torch.testing.assert_close(item["features"], expected["features"])
            assert torch.equal(item["teacher_logits"], expected["teacher_logits"])

    def no_replay(*args):
        raise AssertionError("stored view features were replayed again")

    monkeypatch.setattr("pipeline.student.dataset._replay_all", no_replay)
    again = ViewFeatureBank(dataset.replay, dataset.clips)
    assert torch.equal(again.features, stored.features)
    with pytest.raises(AssertionError, match="replayed again"):  # other views: another file
        ViewFeatureBank(ViewReplay(manifest, cache, 2, 7, CONFIG, bank.samples), dataset.clips)


def replace_view_bank(dataset: StudentDataset, view_bank: ViewFeatureBank) -> StudentDataset:
    """``dataset`` reading its views' features from ``view_bank``."""
    return StudentDataset(
        dataset.manifest,
        dataset.clips,
        dataset.bank,
        dataset.targets,
        dataset.student_steps,
        dataset.replay,
        view_bank=view_bank,
    )


def test_a_plain_index_and_the_valid_set_play_the_clip_as_it_is(replayed):
    _, cache, bank, dataset = replayed
    item = dataset[0]
    assert item["view"].item() == 0 and torch.equal(item["features"], bank[dataset.clips[0].id])
    assert np.array_equal(item["teacher_logits"].numpy(), cache.logits(dataset.clips[0].id))


def test_mix_views_of_a_multi_label_dataset_carry_both_clips_labels(
    views_data, views_cache, tmp_path
):
    multi = copy_dataset(views_data, tmp_path / "multi", manifest_lines(views_data))
    labels = json.loads((multi / "labels.json").read_text())
    (multi / "labels.json").write_text(json.dumps({**labels, "multi_label": True}))
    manifest = Manifest.load(multi)
    with TeacherCache(views_cache) as cache:
        replay = ViewReplay(manifest, cache, 3, 0, CONFIG, 16_000)
        clip = manifest.split("train")[0]
        params = cache.params(clip.id, 1)
        partner = manifest[params.partner.clip_id]
        union = torch.maximum(label_target(manifest, clip), label_target(manifest, partner))
        assert torch.equal(replay.target(clip, params), union)
        assert union.sum() >= 1 and torch.equal(
            replay.target(clip, cache.params(clip.id, 0)), label_target(manifest, clip)
        )


def test_views_reach_persistent_workers_each_epoch(replayed):
    dataset = replayed[3]
    options = StudentTrainingOptions(batch_size=4, workers=1, seed=7)
    loader = _loader(dataset, options)
    for epoch in range(3):
        _start_epoch(loader, options.seed, epoch)
        for batch in loader:
            for index, view in zip(batch["index"].tolist(), batch["view"].tolist(), strict=True):
                assert view == drawn_view(7, dataset.clips[index].id, epoch, 3)


def test_one_view_gives_the_batches_shuffle_gave(synth_data):
    manifest = Manifest.load(synth_data)
    bank = FeatureBank(manifest, CONFIG, clip_samples(manifest, CONFIG.sample_rate))
    dataset = StudentDataset(manifest, manifest.split("train"), bank)
    options = StudentTrainingOptions(batch_size=8, seed=3)
    before = DataLoader(dataset, batch_size=8, shuffle=True, generator=torch.Generator())
    now = _loader(dataset, options)
    for epoch in (0, 1):
        before.generator.manual_seed(options.seed * 100_003 + epoch)
        _start_epoch(now, options.seed, epoch)
        old, new = next(iter(before)), next(iter(now))
        assert torch.equal(old["index"], new["index"]) and not new["view"].any()
        assert torch.equal(old["features"], new["features"])
        assert torch.equal(old["target"], new["target"])


def test_views_the_cache_lacks_or_without_a_cache_are_refused(views_data, views_cache, tmp_path):
    quick = StudentTrainingOptions(student="tc-resnet8", epochs=1, batch_size=4, device="cpu")
    with pytest.raises(TkdError, match=r"holds 3 view\(s\) per clip, --views 4 asks for more"):
        train_student(views_data, tmp_path / "a", views_cache, replace(quick, kd="both", views=4))
    with pytest.raises(TkdError, match="--views 2 needs --cache"):
        train_student(views_data, tmp_path / "b", None, replace(quick, views=2))
    with pytest.raises(TkdError, match="--views must be at least 1"):
        replace(quick, views=0)


def test_the_command_line_passes_views_on(views_data, views_cache, tmp_path):
    from click.testing import CliRunner

    from stages.commands.base import main

    command = ["train-student", "--data", str(views_data), "--student", "tc-resnet8"]
    command += ["--cache", str(views_cache), "--out", str(tmp_path), "--views", "4"]
    refused = CliRunner().invoke(main, command)
    assert refused.exit_code == 1 and "--views 4 asks for more" in refused.output


def test_labels_only_runs_replay_views_and_record_them(views_data, views_cache, tmp_path):
    options = StudentTrainingOptions(
        student="tc-resnet8", epochs=2, batch_size=4, device="cpu", views=3
    )
    results = train_student(views_data, tmp_path, views_cache, options)
    config = json.loads((tmp_path / "config.json").read_text())
    assert results["views"] == 3 and config["views"] == 3
    assert config["cache_key"] == TeacherCache(views_cache).index.key  # results depend on it
    assert config["teacher_attention_source"] is None
