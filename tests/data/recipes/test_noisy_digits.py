"""Noisy digits: the mixer on generated tones (always), then on the real FSDD recordings
and Speech Commands noise (skipped when ``/work/shared/data`` is absent)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from pipeline.data.audio import mix_at_snr
from pipeline.data.manifest import Manifest
from pipeline.data.recipes.common import mix_events, place_events
from pipeline.data.recipes.noisy_digits import fsdd_split, prepare_noisy_digits, remix_noisy_digits
from tests.data.recipes.fixtures import files_under, make_fsdd, make_noise, shared_data

RATE = 16_000
FSDD_ID = re.compile(r"(\d)_([^_]+)_(\d+)")


def source_split(path: str) -> str:
    return fsdd_split(int(FSDD_ID.fullmatch(Path(path).stem)[3]))


def check_clips(manifest: Manifest, length: float) -> None:
    """What every noisy-digits clip promises: a 16 kHz wav of exactly ``length`` seconds,
    ordered non-overlapping events inside it, labels = digits of its sources, FSDD splits,
    and a mix record that can rebuild it."""
    assert manifest.labels.names == tuple("0123456789")
    for clip in manifest:
        info = soundfile.info(str(manifest.audio_path(clip)))
        assert info.samplerate == RATE and info.frames == round(length * RATE)
        assert clip.duration == length and clip.audio == f"audio/{clip.id}.wav"
        assert clip.split == source_split(clip.id)
        mix = clip.mix
        assert mix["generator"] == "noisy-digits" and mix["length"] == length
        assert Path(mix["noise"]).is_absolute() and Path(mix["noise"]).is_file()
        assert mix["snr_range"][0] <= mix["snr_db"] <= mix["snr_range"][1]
        assert len(clip.events) == len(mix["sources"]) == len(clip.labels)
        digits = sorted(Path(source).name[0] for source in mix["sources"])
        assert list(clip.labels) == digits and len(set(digits)) == len(digits)
        assert all(source_split(source) == clip.split for source in mix["sources"])
        ends = [0.0]
        for onset, offset in clip.events:
            assert ends[-1] <= onset < offset <= length
            ends.append(offset)


def event_contrast_db(manifest: Manifest, clip) -> float:
    """Power inside the events over power outside them, in dB."""
    wave, rate = soundfile.read(manifest.audio_path(clip))
    inside = np.zeros(len(wave), dtype=bool)
    for onset, offset in clip.events:
        inside[round(onset * rate) : round(offset * rate)] = True
    return float(10 * np.log10(np.mean(wave[inside] ** 2) / np.mean(wave[~inside] ** 2)))


# -- the mixer ------------------------------------------------------------------------
def test_one_event_is_exactly_mix_at_snr():
    event, noise = torch.randn(800) * 0.1, torch.randn(4000) * 0.05
    assert torch.equal(mix_events([event], [1000], noise, 3.0), mix_at_snr(event, noise, 1000, 3.0))


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 5.0])
def test_every_event_gets_the_snr_over_its_own_span(snr_db):
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(8000, generator=generator) * torch.linspace(0.01, 0.2, 8000)
    events = [torch.randn(500, generator=generator) * scale for scale in (0.3, 0.01, 1.0)]
    offsets = [200, 3000, 6500]
    mixed = mix_events(events, offsets, noise, snr_db)
    scale = mixed[:200] / noise[:200]  # the noise gain, read off a noise-only stretch
    assert torch.allclose(scale, scale[0].expand(200), rtol=1e-4)
    for event, offset in zip(events, offsets, strict=True):
        span = slice(offset, offset + len(event))
        bed = scale[0] * noise[span]
        measured = 10 * torch.log10((mixed[span] - bed).pow(2).mean() / bed.pow(2).mean())
        assert measured.item() == pytest.approx(snr_db, abs=1e-3)


def test_placement_never_overlaps_and_stays_inside():
    rng = np.random.default_rng(0)
    for _ in range(200):
        lengths = [int(n) for n in rng.integers(1, 300, size=int(rng.integers(1, 4)))]
        samples = sum(lengths) + int(rng.integers(0, 200))
        offsets = place_events(lengths, samples, rng)
        ends = [offset + n for offset, n in zip(offsets, lengths, strict=True)]
        assert offsets[0] >= 0 and ends[-1] <= samples
        assert all(end <= start for end, start in zip(ends, offsets[1:], strict=False))


# -- generated FSDD-like tree ---------------------------------------------------------
@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("fsdd")
    return make_fsdd(root), make_noise(root / "noise", seconds=3.0)


def test_single_label_clips(tree, tmp_path):
    fsdd, noise = tree
    manifest = prepare_noisy_digits(fsdd, noise, tmp_path / "out", length=1.0)
    assert Manifest.load(tmp_path / "out").clips == manifest.clips
    check_clips(manifest, 1.0)
    assert len(manifest) == 240 and all(len(clip.labels) == 1 for clip in manifest)
    splits = {name: len(manifest.split(name)) for name in ("train", "valid", "test")}
    assert splits == {"train": 40, "valid": 100, "test": 100}  # indices 10-11, 5-9, 0-4


def test_noise_shorter_than_the_clip_is_looped(tree, tmp_path):
    fsdd, noise = tree
    manifest = prepare_noisy_digits(fsdd, noise, tmp_path / "out", length=4.0, speakers={"ann"})
    check_clips(manifest, 4.0)


def test_multi_label_clips_stay_within_their_split(tree, tmp_path):
    fsdd, noise = tree
    manifest = prepare_noisy_digits(fsdd, noise, tmp_path / "out", 1.5, multi_label=True)
    assert manifest.labels.multi_label
    check_clips(manifest, 1.5)
    assert {len(clip.labels) for clip in manifest} == {1, 2, 3}
    rng = np.random.default_rng(0)
    for clip in manifest.clips[:30]:
        wave, events = remix_noisy_digits(clip, rng, RATE)
        assert wave.shape == (round(1.5 * RATE),) and len(events) == len(clip.labels)
        assert all(0 <= onset < offset <= 1.5 for onset, offset in events)
        assert all(a[1] <= b[0] for a, b in zip(events, events[1:], strict=False))


@pytest.mark.slow  # starts two spawned workers (torch import): ~5-8 s
def test_worker_processes_give_identical_bytes(tree, tmp_path):
    fsdd, noise = tree
    one = prepare_noisy_digits(fsdd, noise, tmp_path / "a", 1.0, speakers={"ann"}, num_jobs=1)
    two = prepare_noisy_digits(fsdd, noise, tmp_path / "b", 1.0, speakers={"ann"}, num_jobs=2)
    assert one.clips == two.clips
    assert files_under(tmp_path / "a") == files_under(tmp_path / "b")


def test_seed_changes_the_draws(tree, tmp_path):
    fsdd, noise = tree
    first = prepare_noisy_digits(fsdd, noise, tmp_path / "a", 1.0, speakers={"bob"})
    second = prepare_noisy_digits(fsdd, noise, tmp_path / "b", 1.0, speakers={"bob"}, seed=1)
    assert [c.events for c in first] != [c.events for c in second]
    assert files_under(tmp_path / "a" / "audio") != files_under(tmp_path / "b" / "audio")


# -- the real recordings ----------------------------------------------------------------
REAL = shared_data()
needs_real = pytest.mark.skipif(
    REAL is None, reason="real audio not found: set TKD_SHARED_DATA or check out ../shared/data"
)
SPEAKER = {"theo"}  # one of five speakers: 500 recordings keeps the test fast


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Manifest:
    out = tmp_path_factory.mktemp("real") / "single"
    return prepare_noisy_digits(
        REAL / "fsdd", REAL / "speech_commands_noise", out, length=2.0, speakers=SPEAKER
    )


@needs_real
def test_real_clips_and_fsdd_split_convention(real):
    check_clips(real, 2.0)
    assert len(real) == 500
    splits = {name: len(real.split(name)) for name in ("train", "valid", "test")}
    assert splits == {"train": 400, "valid": 50, "test": 50}


@needs_real
def test_real_event_region_is_louder_than_the_rest(real):
    partial = [clip for clip in real if clip.events != ((0.0, clip.duration),)]
    contrast = {clip.id: event_contrast_db(real, clip) for clip in partial}
    assert np.median(list(contrast.values())) > 1.5
    assert np.mean([db > 0 for db in contrast.values()]) > 0.85
    # Over stationary noise the spoken digit always raises the power of its span; over
    # bursty noise (a cat, dishes) a burst elsewhere can outweigh it, as in real life.
    stationary = [
        c.id for c in partial if Path(c.mix["noise"]).stem in {"white_noise", "running_tap"}
    ]
    assert stationary and all(contrast[clip_id] > 0 for clip_id in stationary)


@needs_real
def test_real_same_seed_gives_identical_bytes(real, tmp_path):
    noise = REAL / "speech_commands_noise"
    again = prepare_noisy_digits(REAL / "fsdd", noise, tmp_path / "again", 2.0, speakers=SPEAKER)
    assert again.clips == real.clips
    assert files_under(again.root) == files_under(real.root)


@needs_real
def test_real_multi_label(tmp_path):
    manifest = prepare_noisy_digits(
        REAL / "fsdd",
        REAL / "speech_commands_noise",
        tmp_path / "multi",
        length=2.0,
        multi_label=True,
        speakers=SPEAKER,
    )
    assert Manifest.load(manifest.root).clips == manifest.clips
    check_clips(manifest, 2.0)
    counts = np.bincount([len(clip.labels) for clip in manifest], minlength=4)
    assert counts[1] > 0 and counts[2] > 0 and counts[3] > 0


@needs_real
def test_real_remix_keeps_labels_and_length_but_changes_the_wave(real):
    rng = np.random.default_rng(123)
    for clip in real.split("train")[:20]:
        stored = torch.from_numpy(soundfile.read(real.audio_path(clip), dtype="float32")[0])
        wave, events = remix_noisy_digits(clip, rng, RATE)
        assert wave.shape == stored.shape and wave.dtype == torch.float32
        assert not torch.allclose(wave, stored, atol=1e-3)
        assert len(events) == len(clip.labels) == 1
        ((onset, offset),) = events
        (stored_onset, stored_offset) = clip.events[0]
        assert 0 <= onset < offset <= clip.duration
        assert offset - onset == pytest.approx(stored_offset - stored_onset, abs=1e-5)
