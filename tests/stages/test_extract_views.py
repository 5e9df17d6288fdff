"""extract-teacher --views K: per-view teacher outputs and parameters that replay exactly."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from pipeline.cache import TeacherCache, verify_cache
from pipeline.data.audio import load_audio
from pipeline.data.augment import ViewSettings, apply, draw_view
from pipeline.data.manifest import Manifest
from pipeline.data.views import draw_views, view_source
from pipeline.errors import CacheError, TkdError
from pipeline.teacher.extraction import ExtractionSettings
from pipeline.teacher.model import Teacher
from stages.extract_teacher import extract_teacher, plan_extraction
from tests.builders import copy_dataset, manifest_lines

VIEWS = ExtractionSettings(resolution=40, views=3, view_seed=5, augment=ViewSettings())


@pytest.fixture(scope="module")
def small(tmp_path_factory, synth_data) -> Path:
    """12 of the synthetic clips (6 train, 3 valid, 3 test): three views each stay cheap."""
    lines = manifest_lines(synth_data)
    kept = [
        line
        for split, n in (("train", 6), ("valid", 3), ("test", 3))
        for line in [x for x in lines if x["split"] == split][:n]
    ]
    return copy_dataset(synth_data, tmp_path_factory.mktemp("small"), kept)


@pytest.fixture(scope="module")
def caches(tmp_path_factory, small, tiny_teacher) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cache")
    one = extract_teacher(small, tiny_teacher, root, ExtractionSettings(resolution=40), 5)
    three = extract_teacher(small, tiny_teacher, root, VIEWS, shard_size=5)
    return one.cache_dir, three.cache_dir


def test_views_and_their_settings_change_the_key_and_one_view_keeps_todays(
    small, tiny_teacher, tmp_path
):
    def plan(**settings):
        return plan_extraction(small, tiny_teacher, tmp_path, ExtractionSettings(**settings))

    base = plan()
    assert base.record == {"resolution": 100, "layers": [1, 2], "store_maps": False}
    other = ViewSettings(augment=("gain",))
    assert plan(views=1, augment=other, view_seed=9).directory == base.directory
    keys = {
        plan(**settings).directory
        for settings in (
            {},
            {"views": 3},
            {"views": 4},
            {"views": 3, "view_seed": 1},
            {"views": 3, "augment": other},
            {"views": 3, "augment": ViewSettings(max_shift_s=0.1)},
        )
    }
    assert len(keys) == 6
    with pytest.raises(TkdError, match="--views 3 needs at least one augmentation"):
        ExtractionSettings(views=3, augment=ViewSettings(augment=()))


def test_three_views_per_clip_view_zero_is_the_plain_record(caches, small):
    plain, viewed = caches
    assert plain != viewed and verify_cache(viewed) == []
    manifest = Manifest.load(small)
    with TeacherCache(plain) as one, TeacherCache(viewed) as three:
        assert one.views == 1 and three.views == 3 and sorted(three.ids) == sorted(manifest.ids)
        assert three.view_settings == ViewSettings() and one.view_settings is None
        for clip_id in manifest.ids:
            first, plain_record = three.record(clip_id, view=0), one.record(clip_id)
            for name in ("rollout", "attention", "logits"):  # batch mates differ: float noise
                mine, theirs = getattr(first, name), getattr(plain_record, name)
                np.testing.assert_allclose(mine, theirs, atol=2e-3, err_msg=name)
            assert three.params(clip_id, 0).is_identity
            for view in (1, 2):
                assert not three.params(clip_id, view).is_identity
                assert not np.array_equal(three.logits(clip_id, view), first.logits)
                assert three.vector(clip_id, "layer:2", view).shape == (40,)
        with pytest.raises(CacheError, match=r"holds 3 view\(s\) per clip: extract with --views 4"):
            three.record(manifest.ids[0], view=3)
    with h5py.File(viewed / "shard-00000.h5") as shard:
        assert shard["rollout"].shape == (5, 3, 2, 40) and shard["logits"].shape == (5, 3, 4)
        assert shard["params"].shape == (5, 3) and shard["rollout"].chunks == (1, 1, 2, 40)
    index = json.loads((viewed / "index.json").read_text())
    assert index["settings"]["views"] == 3 and index["settings"]["view_seed"] == 5


def test_stored_parameters_replay_the_waveform_the_teacher_heard(caches, small, tiny_teacher):
    _, viewed = caches
    manifest = Manifest.load(small)
    teacher = Teacher.load(tiny_teacher)
    rate = teacher.sample_rate
    with TeacherCache(viewed) as cache:
        for clip_id in manifest.ids[:4]:
            clip = manifest[clip_id]
            for view in (1, 2):
                params = cache.params(clip_id, view)
                assert params == draw_view(clip, view, 5, ViewSettings())
                wave = view_source(manifest, params).wave(rate)
                direct = apply(load_audio(manifest.audio_path(clip), rate), rate, params)
                assert torch.equal(wave, direct)
                with torch.no_grad():
                    logits = teacher.attend([wave]).logits[0].numpy()
                # the untrained teacher's views differ by >= 4e-5; a replay by float noise
                distance = [np.abs(cache.logits(clip_id, v) - logits).max() for v in range(3)]
                assert distance[view] < 1e-6 < min(np.delete(distance, view)), distance


def test_resume_keeps_finished_shards(caches, small, tiny_teacher, tmp_path):
    _, viewed = caches
    root = tmp_path / "cache"
    (root / viewed.name).mkdir(parents=True)
    for name in ("shard-00000.h5", "shard-00002.h5"):  # as a killed run leaves them
        (root / viewed.name / name).write_bytes((viewed / name).read_bytes())
    resumed = extract_teacher(small, tiny_teacher, root, VIEWS, shard_size=5)
    assert resumed.cache_dir.name == viewed.name
    assert resumed.summary["shards_reused"] == 2 and resumed.summary["shards_written"] == 1
    assert verify_cache(resumed.cache_dir) == []
    with TeacherCache(resumed.cache_dir) as again, TeacherCache(viewed) as first:
        for clip_id in first.ids:
            for view in range(3):
                assert again.params(clip_id, view) == first.params(clip_id, view)
                np.testing.assert_allclose(
                    again.logits(clip_id, view), first.logits(clip_id, view), atol=1e-4
                )


def test_mix_partners_come_from_the_clips_own_split(small):
    manifest = Manifest.load(small)
    views = draw_views(manifest, 4, 0, ViewSettings(augment=("mix", "gain")), 16_000)
    for clip_id, sources in views.items():
        assert sources[0].params.is_identity and sources[0].partner_audio is None
        for source in sources[1:]:
            partner = manifest[source.params.partner.clip_id]
            assert partner.split == manifest[clip_id].split and partner.id != clip_id
            assert source.partner_audio == str(manifest.audio_path(partner))
    clip_id, source = next(iter(views.items()))[0], next(iter(views.values()))[1]
    partner = manifest[source.params.partner.clip_id]
    wave, partner_wave = (
        load_audio(manifest.audio_path(c), 16_000) for c in (manifest[clip_id], partner)
    )
    direct = apply(wave, 16_000, source.params, partner_wave=partner_wave)
    assert torch.equal(view_source(manifest, source.params).wave(16_000), direct)
    with pytest.raises(TkdError, match="has no noisy-mix record"):
        draw_views(manifest, 2, 0, ViewSettings(augment=("remix",)), 16_000)


def test_remix_views_hear_only_their_own_splits_noise(tmp_path):
    from pipeline.data.recipes.noisy import noise_region
    from pipeline.data.recipes.noisy_digits import prepare_noisy_digits
    from tests.data.recipes.fixtures import make_fsdd, make_noise

    fsdd, noise = make_fsdd(tmp_path, speakers=("ann",)), make_noise(tmp_path / "noise")
    manifest = prepare_noisy_digits(
        fsdd, noise, tmp_path / "data", 1.0, speakers={"ann"}, split_by="recording"
    )
    assert {clip.split for clip in manifest} == {"train", "valid", "test"}
    settings = ViewSettings(augment=("remix", "gain"))
    views = draw_views(manifest, 3, 0, settings, 16_000)
    used: dict[str, set] = {}
    for clip in manifest:
        for source in views[clip.id][1:]:
            drawn = source.params.noise
            low, high = noise_region(drawn.path, clip.split, 16_000)
            assert drawn.region_s == (low / 16_000, high / 16_000)
            assert low / 16_000 <= drawn.start_s <= high / 16_000
            used.setdefault(clip.split, set()).add((drawn.path, drawn.region_s))
    spans = {split: {region for _, region in regions} for split, regions in used.items()}
    for split, other in (("train", "valid"), ("valid", "test"), ("train", "test")):
        for a in spans[split]:
            for b in spans[other]:
                assert a[1] <= b[0] or b[1] <= a[0], (split, a, other, b)
    clip = manifest.clips[0]
    wave = view_source(manifest, views[clip.id][1].params).wave(16_000)
    assert wave.shape[-1] == round(clip.duration * 16_000)
    assert torch.equal(wave, views[clip.id][1].wave(16_000))


class EnergyTeacher:
    """A stand-in teacher whose every layer attends to each 20 ms frame in proportion to
    its energy: where the sound is, so a view's stored target must follow the audio."""

    sample_rate, reduction, hop = 16_000, "mean-row", 320

    def __init__(self, classes: list[str]):
        self.classes = classes

    def length_problem(self, samples: int) -> None:
        return None

    def attend(self, waves: list[torch.Tensor]):
        from pipeline.teacher.model import TeacherOutput

        frames = len(waves[0]) // self.hop
        energy = torch.stack(
            [w[: frames * self.hop].reshape(frames, -1).pow(2).mean(-1) for w in waves]
        )
        share = (energy + 1e-9) / (energy + 1e-9).sum(-1, keepdim=True)
        maps = share[:, None, None, :].expand(-1, 2, frames, -1).contiguous()
        return TeacherOutput(
            torch.zeros(len(waves), len(self.classes)), maps, torch.full((len(waves),), frames)
        )


def moved_by(vector: np.ndarray, bins: int) -> np.ndarray:
    """``vector`` moved ``bins`` later (earlier if negative), zero-filled, renormalised."""
    out = np.zeros_like(vector)
    if bins >= 0:
        out[bins:] = vector[: len(vector) - bins]
    else:
        out[:bins] = vector[-bins:]
    return out / out.sum()


def test_a_shifted_views_target_moves_with_the_shift(small, tiny_teacher, tmp_path, monkeypatch):
    import pipeline.teacher.extraction as extraction

    manifest = Manifest.load(small)
    fake = EnergyTeacher(list(manifest.labels.names))
    monkeypatch.setattr(extraction, "cached_teacher", lambda *_: fake)
    settings = ExtractionSettings(
        resolution=40, views=4, augment=ViewSettings(augment=("shift",), max_shift_s=0.25)
    )
    result = extract_teacher(small, tiny_teacher, tmp_path, settings, shard_size=6)
    moved = 0
    with TeacherCache(result.cache_dir) as cache:
        for clip_id in cache.ids:
            still = cache.vector(clip_id, "layer:1")
            for view in range(1, 4):
                bins = cache.params(clip_id, view).shift_s * 40 / manifest[clip_id].duration
                target = cache.vector(clip_id, "layer:1", view)
                lags = range(-12, 13)
                misfit = [np.abs(moved_by(still, lag) - target).sum() for lag in lags]
                assert abs(lags[int(np.argmin(misfit))] - bins) <= 1, (clip_id, view, bins)
                moved += abs(bins) >= 2
    assert moved >= 10  # most views moved the target by whole bins, not a no-op


def test_the_command_line_takes_views_and_augmentations(small, tiny_teacher, tmp_path):
    from click.testing import CliRunner

    from pipeline.data.augment import AUGMENTATIONS
    from stages.commands.base import main

    runner = CliRunner()
    shown = runner.invoke(main, ["extract-teacher", "--help"], terminal_width=200).output
    assert ", ".join(AUGMENTATIONS) in shown and "speed,shift,gain" in shown
    common = ["extract-teacher", "--data", str(small), "--teacher", str(tiny_teacher)]
    common += ["--cache", str(tmp_path), "--resolution", "20", "--device", "cpu"]
    refused = runner.invoke(main, [*common, "--views", "2", "--augment", "speed,warp"])
    assert refused.exit_code == 2 and "unknown augmentation(s) warp" in refused.output
    done = runner.invoke(main, [*common, "--views", "2", "--augment", "gain", "--view-seed", "3"])
    assert done.exit_code == 0, done.output
    with TeacherCache(done.output.strip().splitlines()[-1]) as cache:
        assert cache.views == 2 and cache.view_settings == ViewSettings(augment=("gain",))
        params = cache.params(cache.ids[0], 1)
        assert params.gain_db != 0 and params.speed == (1, 1) and params.shift_s == 0
        assert cache.index.settings["view_seed"] == 3
