import json

import pytest
import torch
from torch.utils.data import DataLoader

from pipeline.data.manifest import Manifest
from pipeline.data.recipes.synth import SynthConfig, prepare_synth
from pipeline.errors import TkdError
from pipeline.teacher.model import Teacher
from stages.finetune_teacher import (
    TeacherTrainingOptions,
    WaveformDataset,
    _collate,
    finetune_teacher,
)


@pytest.fixture(scope="module")
def easy_data(tmp_path_factory):
    """Three spectrally distinct classes: learnable by a tiny transformer in seconds."""
    out = tmp_path_factory.mktemp("easy")
    config = SynthConfig(
        num_classes=3,
        patterns=("harmonic-stack", "click-train", "noise-burst"),
        length=1.0,
        snr_db=(0.0, 6.0),
        seed=1,
    )
    prepare_synth(out, config, clips_per_class=(16, 8, 8))
    return out


def test_whisper_tiny_from_scratch_beats_chance_clearly(easy_data, tmp_path):
    options = TeacherTrainingOptions(epochs=25, batch_size=8, lr=3e-3, patience=None, device="cpu")
    results = finetune_teacher(easy_data, tmp_path, config="whisper-tiny", options=options)
    assert results["test"] >= 0.6, results["history"]  # chance: 1/3
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["test"] == results["test"] and saved["steps"] == 25 * 6
    assert json.loads((tmp_path / "labels.json").read_text())["classes"][0] == "harmonic-stack"
    teacher = Teacher.load(tmp_path)  # a standard save_pretrained folder with its processing
    assert teacher.classes == ["harmonic-stack", "click-train", "noise-burst"]
    assert (tmp_path / "preprocessor_config.json").is_file()


def test_init_continues_from_a_saved_teacher(easy_data, tmp_path):
    options = TeacherTrainingOptions(steps=2, batch_size=8, patience=None, device="cpu")
    finetune_teacher(easy_data, tmp_path / "first", config="wav2vec2-tiny", options=options)
    results = finetune_teacher(
        easy_data, tmp_path / "second", init=tmp_path / "first", options=options
    )
    assert results["init"] == str(tmp_path / "first") and results["steps"] == 2


def test_remix_trains_on_fresh_draws(easy_data, tmp_path, monkeypatch):
    epochs, set_epoch = [], WaveformDataset.set_epoch
    monkeypatch.setattr(
        WaveformDataset,
        "set_epoch",
        lambda self, epoch: (epochs.append(epoch), set_epoch(self, epoch)),
    )
    options = TeacherTrainingOptions(steps=7, batch_size=8, remix=True, patience=None, device="cpu")
    results = finetune_teacher(easy_data, tmp_path, config="whisper-tiny", options=options)
    assert results["steps"] == 7 and epochs == [0, 1]  # 6 batches an epoch: a second draw


def _mixes(data, workers: int) -> list[list[torch.Tensor]]:
    """Each epoch's waveforms of the first train clips, in clip order, loaded by ``workers``."""
    manifest = Manifest.load(data)
    dataset = WaveformDataset(manifest, manifest.split("train")[:4], 16_000, remix=True, seed=0)
    loader = DataLoader(dataset, batch_size=2, collate_fn=_collate, num_workers=workers)
    epochs = []
    for epoch in range(2):
        dataset.set_epoch(epoch)
        epochs.append([wave for waves, _ in loader for wave in waves])
    return epochs


def test_remix_draws_a_new_mix_each_epoch_whatever_the_workers(easy_data):
    """Worker processes get a copy of the dataset each epoch: a draw counter kept in it
    restarted at every epoch, so with --workers the same mixes came back every epoch."""
    in_process, in_workers = _mixes(easy_data, 0), _mixes(easy_data, 2)
    for epoch in range(2):
        for one, other in zip(in_process[epoch], in_workers[epoch], strict=True):
            assert torch.equal(one, other)
    for first, second in zip(*in_workers, strict=True):
        assert not torch.equal(first, second)


def test_config_or_init_exactly_one(easy_data, tmp_path):
    with pytest.raises(TkdError, match="exactly one"):
        finetune_teacher(easy_data, tmp_path)
