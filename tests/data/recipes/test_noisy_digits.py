"""Noisy digits: the mixer on generated tones (always), then on the real FSDD recordings
and Speech Commands noise (skipped when ``/work/shared/data`` is absent)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from click.testing import CliRunner

from cli import main
from pipeline.data.audio import mix_at_snr
from pipeline.data.manifest import Manifest
from pipeline.data.recipes.noisy import NOISE_REGIONS, mix_events, place_events
from pipeline.data.recipes.noisy_digits import (
    fsdd_split,
    named_speakers,
    prepare_noisy_digits,
    remix_noisy_digits,
    speaker_folds,
)
from tests.data.recipes.fixtures import files_under, make_fsdd, make_noise, shared_data

RATE = 16_000
FSDD_ID = re.compile(r"(\d)_([^_]+)_(\d+)")
SPLITS = ("train", "valid", "test")


def source_split(path: str) -> str:
    return fsdd_split(int(FSDD_ID.fullmatch(Path(path).stem)[3]))


def speaker_of(path: str) -> str:
    return FSDD_ID.fullmatch(Path(path).stem)[2]


def split_counts(manifest: Manifest) -> dict[str, int]:
    return {name: len(manifest.split(name)) for name in SPLITS}


def noise_samples_used(clip) -> set[int]:
    """Indices (at 16 kHz) of the noise file a clip's excerpt read, looping in its region."""
    mix = clip.mix
    low, high = (round(edge * RATE) for edge in mix["noise_region"])
    start = round(mix["noise_start"] * RATE) - low
    return {low + (start + i) % (high - low) for i in range(round(mix["length"] * RATE))}


def check_clips(manifest: Manifest, length: float) -> None:
    """What every noisy-digits clip promises: a 16 kHz wav of exactly ``length`` seconds,
    ordered non-overlapping events inside it, labels = digits of its sources, one speaker
    (recorded) per clip, no recording crossing splits, noise from its split's region,
    and a mix record that can rebuild it."""
    origin = {Path(source).stem: clip.split for clip in manifest for source in clip.mix["sources"]}
    assert manifest.labels.names == tuple("0123456789")
    for clip in manifest:
        info = soundfile.info(str(manifest.audio_path(clip)))
        assert info.samplerate == RATE and info.frames == round(length * RATE)
        assert clip.duration == length and clip.audio == f"audio/{clip.id}.wav"
        assert clip.speaker == speaker_of(clip.id)
        mix = clip.mix
        assert mix["generator"] == "noisy-digits" and mix["length"] == length
        assert Path(mix["noise"]).is_absolute() and Path(mix["noise"]).is_file()
        assert mix["snr_range"][0] <= mix["snr_db"] <= mix["snr_range"][1]
        assert len(clip.events) == len(mix["sources"]) == len(clip.labels)
        digits = sorted(Path(source).name[0] for source in mix["sources"])
        assert list(clip.labels) == digits and len(set(digits)) == len(digits)
        assert all(origin[Path(source).stem] == clip.split for source in mix["sources"])
        assert all(speaker_of(source) == clip.speaker for source in mix["sources"])
        low, high = NOISE_REGIONS[clip.split]
        total = soundfile.info(mix["noise"]).duration
        region = mix["noise_region"]
        assert region == pytest.approx([low * total, high * total], abs=1 / RATE)
        assert region[0] <= mix["noise_start"] < region[1]
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


def test_single_label_clips_split_by_speaker_by_default(tree, tmp_path):
    fsdd, noise = tree
    manifest = prepare_noisy_digits(fsdd, noise, tmp_path / "out", length=1.0)
    assert Manifest.load(tmp_path / "out").clips == manifest.clips
    check_clips(manifest, 1.0)
    assert len(manifest) == 240 and all(len(clip.labels) == 1 for clip in manifest)
    # two speakers: fold 0 of 2 tests ann; bob trains, his recordings 0-4 are valid
    assert {clip.speaker for clip in manifest.split("test")} == {"ann"}
    assert {clip.speaker for clip in manifest.split("train") + manifest.split("valid")} == {"bob"}
    assert split_counts(manifest) == {"train": 70, "valid": 50, "test": 120}
    assert all(source_split(clip.id) == "test" for clip in manifest.split("valid"))


def test_recording_split_keeps_the_fsdd_convention(tree, tmp_path):
    fsdd, noise = tree
    manifest = prepare_noisy_digits(fsdd, noise, tmp_path / "out", 1.0, split_by="recording")
    check_clips(manifest, 1.0)
    assert all(clip.split == source_split(clip.id) for clip in manifest)
    assert split_counts(manifest) == {"train": 40, "valid": 100, "test": 100}  # 10-11, 5-9, 0-4


def test_noise_shorter_than_the_clip_is_looped(tree, tmp_path):
    fsdd, noise = tree
    manifest = prepare_noisy_digits(
        fsdd, noise, tmp_path / "out", length=4.0, speakers={"ann"}, split_by="recording"
    )
    check_clips(manifest, 4.0)


def test_multi_label_clips_stay_within_their_split(tree, tmp_path):
    fsdd, noise = tree
    manifest = prepare_noisy_digits(
        fsdd, noise, tmp_path / "out", 1.5, multi_label=True, split_by="recording"
    )
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
    one = prepare_noisy_digits(fsdd, noise, tmp_path / "a", 1.0, num_jobs=1)
    two = prepare_noisy_digits(fsdd, noise, tmp_path / "b", 1.0, num_jobs=2)
    assert one.clips == two.clips
    assert files_under(tmp_path / "a") == files_under(tmp_path / "b")


def test_seed_changes_the_draws(tree, tmp_path):
    fsdd, noise = tree
    first = prepare_noisy_digits(fsdd, noise, tmp_path / "a", 1.0)
    second = prepare_noisy_digits(fsdd, noise, tmp_path / "b", 1.0, seed=1)
    assert [c.events for c in first] != [c.events for c in second]
    assert files_under(tmp_path / "a" / "audio") != files_under(tmp_path / "b" / "audio")


# -- disjoint splits: speakers and noise --------------------------------------------------
VOICES = ("ann", "bob", "cy", "dee", "eve")


@pytest.fixture(scope="module")
def voices(tmp_path_factory) -> tuple[Path, Path]:
    """Five speakers with six recordings per digit, and a noise file whose sign says which
    split's region a sample came from (train +, valid -, test alternating)."""
    root = tmp_path_factory.mktemp("voices")
    make_fsdd(root, speakers=VOICES, indices=range(6))
    samples = 4 * RATE
    index = np.arange(samples)
    noise = np.where(index < 0.8 * samples, 0.1, -0.1)
    noise[index >= 0.9 * samples] *= np.where(index[index >= 0.9 * samples] % 2, 1, -1)
    (root / "noise").mkdir()
    soundfile.write(root / "noise" / "coded.wav", noise, RATE)
    return root, root / "noise"


def test_speaker_folds_partition_the_speakers():
    tests = [speaker_folds(VOICES, k, 3).test for k in range(3)]
    assert tests == [{"ann", "dee"}, {"bob", "eve"}, {"cy"}]
    assert speaker_folds(VOICES, 1, 3) == speaker_folds(reversed(VOICES), 1, 3)  # order-free


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: speaker_folds(VOICES, 0, 6), "folds must be 2 to 5"),
        (lambda: speaker_folds(VOICES, 3, 3), "fold must be 0 to 2"),
        (lambda: named_speakers(VOICES, ["zed"], []), r"unknown speaker\(s\) \['zed'\]"),
        (lambda: named_speakers(VOICES, ["ann"], ["ann"]), "both test and valid"),
        (lambda: named_speakers(VOICES[:2], ["ann"], ["bob"]), "no speaker is left"),
    ],
)
def test_impossible_speaker_splits_say_why(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize(
    "options",
    [
        {"split_by": "recording", "fold": 1},
        {"test_speakers": ["ann"], "folds": 3},
        {"valid_speakers": ["ann"]},
    ],
)
def test_conflicting_split_options_are_refused(voices, tmp_path, options):
    fsdd, noise = voices
    with pytest.raises(ValueError):
        prepare_noisy_digits(fsdd, noise, tmp_path / "out", 1.0, **options)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "options",
    [
        {"test_speakers": ["ann", "bob"], "valid_speakers": ["cy"]},
        {"fold": 2, "folds": 5},
        {},
    ],
)
def test_no_speaker_and_no_noise_sample_is_shared_across_splits(voices, tmp_path, options):
    fsdd, noise = voices
    manifest = prepare_noisy_digits(fsdd, noise, tmp_path / "out", 0.5, **options)
    check_clips(manifest, 0.5)
    speakers = {name: {clip.speaker for clip in manifest.split(name)} for name in SPLITS}
    used = {name: set().union(*map(noise_samples_used, manifest.split(name))) for name in SPLITS}
    for first, second in (("train", "valid"), ("train", "test"), ("valid", "test")):
        assert not used[first] & used[second]
    assert not speakers["test"] & (speakers["train"] | speakers["valid"])
    if "valid_speakers" in options:
        assert speakers == {"train": {"dee", "eve"}, "valid": {"cy"}, "test": {"ann", "bob"}}
        assert not speakers["valid"] & speakers["train"]
    else:  # one test speaker per fold; valid is the training speakers' recordings 0-4
        assert len(speakers["test"]) == 1 and speakers["valid"] == speakers["train"]
        assert all(int(FSDD_ID.fullmatch(c.id)[3]) < 5 for c in manifest.split("valid"))


def test_audio_and_remix_come_from_their_splits_noise_region(voices, tmp_path):
    fsdd, noise = voices
    manifest = prepare_noisy_digits(fsdd, noise, tmp_path / "out", 0.5, fold=1, folds=5)
    rng = np.random.default_rng(0)
    for clip in manifest.clips[::7]:
        stored = soundfile.read(manifest.audio_path(clip))[0]
        remixed, events = remix_noisy_digits(clip, rng, RATE)
        for wave, spans in ((stored, clip.events), (remixed.numpy(), events)):
            bed = np.ones(len(wave), dtype=bool)
            for onset, offset in spans:
                bed[round(onset * RATE) - 1 : round(offset * RATE) + 1] = False
            signs = np.sign(wave[bed])
            if clip.split == "train":
                assert (signs > 0).all()
            elif clip.split == "valid":
                assert (signs < 0).all()
            else:  # alternating: no two neighbouring noise samples share a sign
                assert (signs[1:] != signs[:-1]).mean() > 0.9


def test_command_line_split_options(voices, tmp_path):
    fsdd, noise = voices
    base = ["data", "noisy-digits", "--fsdd", str(fsdd), "--noise", str(noise), "--length", "0.5"]
    runner = CliRunner()
    made = runner.invoke(main, [*base, "--out", str(tmp_path / "a"), "--test-speakers", "eve"])
    assert made.exit_code == 0, made.output
    manifest = Manifest.load(tmp_path / "a")
    assert {clip.speaker for clip in manifest.split("test")} == {"eve"}
    refused = runner.invoke(main, [*base, "--out", str(tmp_path / "b"), "--test-speakers", "zed"])
    assert refused.exit_code == 2 and "unknown speaker(s) ['zed']" in refused.output
    assert "Traceback" not in refused.output and not (tmp_path / "b").exists()


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
        REAL / "fsdd",
        REAL / "speech_commands_noise",
        out,
        length=2.0,
        speakers=SPEAKER,
        split_by="recording",
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
    again = prepare_noisy_digits(
        REAL / "fsdd", noise, tmp_path / "again", 2.0, speakers=SPEAKER, split_by="recording"
    )
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
        split_by="recording",
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
