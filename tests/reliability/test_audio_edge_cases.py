"""Bad and odd audio: each is refused with an AudioError naming the file, or handled as
documented (downmix, resample, silence accepted, too-short clips padded to one teacher
frame, clips longer than a Whisper teacher's window refused), end to end through the
teacher, the cache and a student run: never a torch traceback, never a NaN vector."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from pipeline.cache import TeacherCache, verify_cache
from pipeline.data.audio import load_audio
from pipeline.data.manifest import LabelSet, Manifest
from pipeline.data.recipes.common import probe_audio
from pipeline.errors import AudioError, TkdError
from pipeline.teacher.attention import received_attention, rollout_vectors
from pipeline.teacher.extraction import ExtractionSettings
from pipeline.teacher.model import Teacher, build_teacher
from pipeline.temporal import to_resolution
from stages.extract_teacher import extract_teacher
from stages.train_student import StudentTrainingOptions, train_student
from tests.reliability.helpers import RATE, tone, write_dataset, write_wav


def _wav_bytes(seconds: float = 1.0) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, tone(seconds), RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _unknown_codec() -> bytes:
    """A well-formed RIFF/WAVE file whose format tag no decoder knows."""
    data = bytearray(_wav_bytes(0.1))
    struct.pack_into("<H", data, 20, 0x1234)
    return bytes(data)


def _non_finite(value: float):
    def write(path: Path) -> Path:
        samples = tone(0.1)
        samples[7] = value
        return write_wav(path, samples, subtype="FLOAT")

    return write


def _raw(content: bytes):
    def write(path: Path) -> Path:
        path.write_bytes(content)
        return path

    return write


# name: (file name, writer, message, caught by the header probe the recipes use)
REFUSED = {
    "empty file": ("empty.wav", _raw(b""), r"empty \(0 bytes\)", True),
    "truncated header": ("header.wav", _raw(_wav_bytes()[:30]), "cannot be decoded", True),
    "cut short after the header": ("cut.wav", _raw(_wav_bytes()[:1000]), "truncated", True),
    "text named .wav": ("notes.wav", _raw(b"this is not audio\n"), "cannot be decoded", True),
    "image named .wav": ("photo.wav", _raw(b"\x89PNG\r\n\x1a\n" + bytes(64)), "decoded", True),
    "unsupported codec": ("codec.wav", _raw(_unknown_codec()), "cannot be decoded", True),
    "unsupported container": ("clip.m4a", _raw(b"\0\0\0 ftypM4A " + bytes(99)), "decoded", True),
    "NaN samples": ("nan.wav", _non_finite(np.nan), "NaN or infinite", False),
    "infinite samples": ("inf.wav", _non_finite(np.inf), "NaN or infinite", False),
    "no samples": ("zero.wav", lambda p: write_wav(p, np.zeros(0)), "no samples", True),
    "missing": ("gone.wav", lambda p: p, "does not exist", True),
}


@pytest.mark.parametrize("case", REFUSED)
def test_bad_audio_is_refused_naming_the_file(case, tmp_path):
    name, write, message, probed = REFUSED[case]
    path = write(tmp_path / name)
    with pytest.raises(AudioError, match=message) as caught:
        load_audio(path)
    assert caught.value.path == path and str(caught.value).startswith(f"{path}: ")
    if probed:  # dataset preparation finds it from the header, without reading samples
        with pytest.raises(AudioError, match=message):
            probe_audio(path)


def test_documented_handling_of_odd_but_usable_audio(tmp_path):
    silence = load_audio(write_wav(tmp_path / "silence.wav", np.zeros(RATE)))
    assert silence.shape == (RATE,) and silence.abs().max() == 0  # accepted as it is
    low_rate = load_audio(write_wav(tmp_path / "8k.wav", tone(1.0, rate=8000), rate=8000))
    assert low_rate.shape == (RATE,) and low_rate.dtype == torch.float32  # resampled
    left, right = tone(0.5, freq=300), tone(0.5, freq=700)
    stereo = np.stack([left, right], axis=1)
    mono = load_audio(write_wav(tmp_path / "stereo.wav", stereo, subtype="FLOAT"))
    np.testing.assert_allclose(mono.numpy(), (left + right) / 2, atol=1e-6)  # averaged
    short = load_audio(write_wav(tmp_path / "short.wav", tone(0.01)))
    assert short.shape == (160,)  # a 10 ms clip is read whole; the teacher pads it


CLASSES = ("low", "high")


def _teacher(preset: str, out: Path) -> Path:
    """An untrained two-class teacher saved like a fine-tuned one (1 s Whisper window)."""
    torch.manual_seed(0)
    model, extractor = build_teacher(preset, LabelSet(CLASSES), 1.0)
    model.save_pretrained(out)
    extractor.save_pretrained(out)
    return out


@pytest.fixture(scope="module", params=["whisper-tiny", "wav2vec2-tiny"])
def teacher_dir(request, tmp_path_factory) -> Path:
    """Whisper (fixed 1 s window, pads) and wav2vec 2.0 (400-sample receptive field)."""
    return _teacher(request.param, tmp_path_factory.mktemp(request.param))


BATCHES = {
    "10 ms alone": [tone(0.01)],
    "1 sample alone": [tone(0.01)[:1]],
    "399 samples alone": [tone(0.03)[:399]],
    "silence alone": [np.zeros(RATE, np.float32)],
    "10 ms beside 1 s": [tone(0.01), tone(1.0)],
    "silent 10 ms beside silence": [np.zeros(160, np.float32), np.zeros(RATE, np.float32)],
}


@pytest.mark.parametrize("batch", BATCHES)
def test_short_and_silent_clips_give_finite_distributions(batch, teacher_dir):
    teacher = Teacher.load(teacher_dir)
    output = teacher.attend([torch.from_numpy(wave) for wave in BATCHES[batch]])
    assert (output.frames >= 1).all() and torch.isfinite(output.logits).all()
    for vectors in (
        rollout_vectors(output.maps, output.frames, teacher.reduction),
        received_attention(output.maps, output.frames),
    ):
        binned = to_resolution(vectors, output.frames, 20)
        assert torch.isfinite(binned).all() and (binned >= 0).all()
        torch.testing.assert_close(binned.sum(-1), torch.ones(binned.shape[:2]))


def _edge_dataset(root: Path, long_seconds: float | None = None) -> Path:
    """Four ordinary one-second clips per class plus the edge cases, as a dataset."""
    audio = root / "audio"
    clips = []

    def add(clip_id: str, samples: np.ndarray, label: str, split: str, rate: int = RATE):
        path = write_wav(audio / f"{clip_id}.wav", samples, rate, subtype="FLOAT")
        seconds = len(samples) / rate
        clips.append(
            dict(id=clip_id, audio=str(path), labels=[label], split=split, duration=seconds)
        )

    for k, label in enumerate(CLASSES):
        for split in ("train", "train", "valid", "test"):
            add(f"{split}-{label}-{len(clips)}", tone(1.0, freq=300 + 500 * k), label, split)
    add("ten-ms", tone(0.01), "low", "train")
    add("one-sample", tone(0.01)[:1], "high", "train")
    add("silent", np.zeros(RATE), "low", "train")
    add("stereo-8k", np.stack([tone(1.0, 8000), tone(1.0, 8000, 660)], 1), "high", "valid", 8000)
    if long_seconds:
        add("long", tone(long_seconds), "high", "train")
    return write_dataset(root, clips, list(CLASSES))


def test_edge_clips_go_through_extraction_and_a_student_run(tmp_path, teacher_dir):
    data = _edge_dataset(tmp_path / "data")
    settings = ExtractionSettings(resolution=20, batch_size=4)
    cache = extract_teacher(data, teacher_dir, tmp_path / "cache", settings, shard_size=5).cache_dir
    assert verify_cache(cache) == []
    with TeacherCache(cache) as reader:
        assert sorted(reader.ids) == sorted(Manifest.load(data).ids)
        for clip_id in ("ten-ms", "one-sample", "silent", "stereo-8k"):
            record = reader.record(clip_id)
            assert np.isfinite(record.logits).all()
            for vectors in (record.rollout, record.attention):
                assert np.isfinite(vectors).all()
                np.testing.assert_allclose(vectors.sum(-1), 1.0, atol=2e-3)
        # a clip shorter than one frame has one real frame: its attention is spread evenly
        np.testing.assert_allclose(reader.vector("one-sample"), 1 / 20, atol=1e-3)
    options = StudentTrainingOptions(
        student="tc-resnet8", kd="both", epochs=1, batch_size=4, device="cpu"
    )
    results = train_student(data, tmp_path / "run", cache, options)
    assert np.isfinite(results["history"][0]["train_loss"])


def test_clip_longer_than_a_whisper_window_is_refused_not_cropped(tmp_path):
    data = _edge_dataset(tmp_path / "data", long_seconds=3.0)
    teacher = _teacher("whisper-tiny", tmp_path / "teacher")
    with pytest.raises(AudioError, match=r"long\.wav: clip 'long': 3\.00 s is longer than the "):
        extract_teacher(data, teacher, tmp_path / "cache", ExtractionSettings(resolution=20))
    assert not list((tmp_path / "cache").glob("*/index.json"))
    skipping = ExtractionSettings(resolution=20, skip_bad=True)
    cache = extract_teacher(data, teacher, tmp_path / "cache", skipping).cache_dir
    index = json.loads((cache / "index.json").read_text())
    assert [(s["id"], "input window" in s["problem"]) for s in index["skipped"]] == [("long", True)]


def test_long_clip_goes_whole_through_a_wav2vec2_teacher(tmp_path):
    teacher = Teacher.load(_teacher("wav2vec2-tiny", tmp_path / "teacher"))
    output = teacher.attend([torch.from_numpy(tone(6.0))])
    assert output.frames.tolist() == [299]  # every 20 ms frame of the 6 s, none cropped
    rollout = rollout_vectors(output.maps, output.frames, teacher.reduction)
    assert torch.isfinite(to_resolution(rollout, output.frames, 50)).all()


def test_out_of_device_memory_is_one_clear_error(tmp_path, monkeypatch):
    """What a very long clip does to a wav2vec 2.0 teacher on a GPU (maps grow as frames^2)."""
    data = _edge_dataset(tmp_path / "data")

    def out_of_memory(self, waves):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

    monkeypatch.setattr(Teacher, "attend", out_of_memory)
    teacher = _teacher("wav2vec2-tiny", tmp_path / "teacher")
    with pytest.raises(TkdError, match=r"shard-00000\.h5: out of device memory .*--batch-size"):
        extract_teacher(data, teacher, tmp_path / "cache", ExtractionSettings(resolution=20))
    assert not list((tmp_path / "cache").glob("*/*.h5")) and not list(
        (tmp_path / "cache").glob("*/index.json")
    )
