"""SpecAugment on the student's training features: drawn per (seed, clip, epoch)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from pipeline.data.manifest import Manifest
from pipeline.student.dataset import FeatureBank, StudentDataset, clip_samples
from pipeline.student.features import FeatureConfig
from pipeline.student.spec_augment import SpecAugment
from stages.train_student import StudentTrainingOptions, train_student

POLICY = SpecAugment(freq_masks=2, freq_width=7, time_masks=2, time_width=0.1)


def test_masks_are_drawn_per_seed_clip_and_epoch():
    features = torch.randn(101, 40)
    before = features.clone()
    first = POLICY(features, 0, "clip-a", 3)
    assert torch.equal(features, before)  # the bank's features are not touched
    assert torch.equal(first, POLICY(features, 0, "clip-a", 3))
    others = [POLICY(features, 0, "clip-a", 4), POLICY(features, 0, "clip-b", 3)]
    others.append(POLICY(features, 1, "clip-a", 3))
    assert all(not torch.equal(first, other) for other in others)


def test_masks_stay_within_the_policy_and_take_the_clip_mean():
    features = torch.randn(101, 40) + 5.0
    bands_seen = frames_seen = 0
    for epoch in range(20):
        masked = POLICY(features, 0, "clip", epoch)
        changed = masked != features
        assert torch.allclose(masked[changed], features.mean().expand(int(changed.sum())))
        full_bands = int(changed.all(dim=0).sum())
        full_frames = int(changed.all(dim=1).sum())
        assert full_bands <= 2 * 7 and full_frames <= 2 * int(0.1 * 101)
        bands_seen, frames_seen = bands_seen + full_bands, frames_seen + full_frames
        # a masked cell lies in a fully masked band or a fully masked frame span
        assert torch.equal(changed, changed.all(dim=0)[None] | changed.all(dim=1)[:, None])
    assert bands_seen > 0 and frames_seen > 0  # masking happens, in both directions
    assert SpecAugment(freq_masks=0, time_masks=0)(features, 0, "clip", 0).equal(features)


def test_only_training_items_are_masked(synth_data):
    manifest = Manifest.load(synth_data)
    config = FeatureConfig()
    bank = FeatureBank(manifest, config, clip_samples(manifest, config.sample_rate))
    clips = manifest.split("train")[:4]
    dataset = StudentDataset(manifest, clips, bank, spec_augment=POLICY, seed=2)
    for position, clip in enumerate(clips):
        plain = dataset[position]["features"]  # an int index: valid/test, no epoch
        assert torch.equal(plain, bank[clip.id])
        trained = dataset[(position, 5)]["features"]
        assert torch.equal(trained, POLICY(bank[clip.id], 2, clip.id, 5))


def test_a_run_with_spec_augment_trains_and_records_its_policy(synth_data, tmp_path):
    options = StudentTrainingOptions(
        student="tc-resnet8", epochs=2, batch_size=8, lr=3e-3, device="cpu"
    )
    plain = train_student(synth_data, tmp_path / "plain", None, options)
    masked = train_student(
        synth_data, tmp_path / "masked", None, replace(options, spec_augment=True)
    )
    assert masked["history"] != plain["history"]
    config = json.loads((tmp_path / "masked" / "config.json").read_text())
    assert config["spec_augment"] is True and config["spec_augment_policy"] == POLICY.to_json()


@pytest.mark.parametrize("bad", [dict(freq_masks=-1), dict(time_width=1.5)])
def test_a_bad_policy_is_refused(bad):
    with pytest.raises(ValueError):
        SpecAugment(**bad)
