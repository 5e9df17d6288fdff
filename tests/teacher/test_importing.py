import json
import pathlib

import numpy as np
import pytest
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

from pipeline.data.manifest import LabelSet
from pipeline.errors import CheckpointError, TkdError
from pipeline.files import file_sha256
from pipeline.teacher.importing import detect_source, load_source
from pipeline.teacher.model import build_teacher
from tests.teacher.whisper_sources import (
    D_MODEL,
    HEADS,
    LAYERS,
    MELS,
    ctranslate2_folder,
    ctranslate2_variables,
    openai_checkpoint,
    random_arrays,
    reference_encoder,
    write_model_bin,
)

LABELS = LabelSet(("a", "b", "c"))


@pytest.fixture(scope="module")
def arrays():
    return random_arrays()


def _features(seconds: int) -> torch.Tensor:
    return torch.randn(1, MELS, seconds * 100, generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def test_ctranslate2_import_reproduces_the_source_forward(arrays, tmp_path):
    folder = ctranslate2_folder(tmp_path / "ct2", arrays)
    assert detect_source(folder) == "ctranslate2"
    model, extractor, origin = load_source(folder, LABELS, 1.6)
    features = _features(2)
    assert extractor.chunk_length == 2 and model.config.max_source_positions == 100
    imported = model.eval().encoder(features).last_hidden_state
    torch.testing.assert_close(imported, reference_encoder(arrays, features), atol=1e-4, rtol=0)
    assert origin["format"] == "ctranslate2" and origin["window_seconds"] == 2
    assert origin["sha256"] == file_sha256(folder / "model.bin")


def test_window_cut_keeps_the_first_rows_and_every_other_weight(arrays, tmp_path):
    folder = ctranslate2_folder(tmp_path / "ct2", arrays)
    short = load_source(folder, LABELS, 1.0)[0].encoder.state_dict()
    whole = load_source(folder, LABELS, 3.0)[0].encoder.state_dict()
    assert torch.equal(
        short.pop("embed_positions.weight"), torch.from_numpy(arrays["positions"][:50])
    )
    assert torch.equal(whole.pop("embed_positions.weight"), torch.from_numpy(arrays["positions"]))
    assert short.keys() == whole.keys()
    assert all(torch.equal(short[k], whole[k]) for k in short)


def test_a_window_longer_than_the_table_is_refused(arrays, tmp_path):
    folder = ctranslate2_folder(tmp_path / "ct2", arrays)
    with pytest.raises(TkdError, match="needs 200 positions; the checkpoint has 150"):
        load_source(folder, LABELS, 4.0)
    with pytest.raises(TkdError, match="needs the clip length"):
        load_source(folder, LABELS, None)


@torch.no_grad()
def test_openai_checkpoint_import_reproduces_the_source_forward(arrays, tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save(openai_checkpoint(arrays), path)
    assert detect_source(path) == "openai-whisper"
    model, _, origin = load_source(path, LABELS, 2.0)
    features = _features(2)
    imported = model.eval().encoder(features).last_hidden_state
    torch.testing.assert_close(imported, reference_encoder(arrays, features), atol=1e-4, rtol=0)
    assert origin["format"] == "openai-whisper"


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return (pathlib.Path.touch, (marker,))

    path = tmp_path / "evil.pt"
    torch.save({"dims": {}, "model_state_dict": Payload()}, path)
    with pytest.raises(CheckpointError, match="not a plain-tensor OpenAI whisper checkpoint"):
        load_source(path, LABELS, 2.0)
    assert not marker.exists()


def test_hugging_face_whisper_keeps_the_encoder_and_cuts_the_window(tmp_path):
    config = WhisperConfig(
        d_model=D_MODEL,
        encoder_layers=LAYERS,
        encoder_attention_heads=HEADS,
        encoder_ffn_dim=64,
        decoder_layers=1,
        decoder_attention_heads=HEADS,
        decoder_ffn_dim=64,
        num_mel_bins=MELS,
        vocab_size=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=3,
        max_source_positions=150,
        max_target_positions=32,
    )
    torch.manual_seed(0)
    source = WhisperForConditionalGeneration(config)
    source.save_pretrained(tmp_path / "hf")
    assert detect_source(tmp_path / "hf") == "hf-whisper"
    model, _, origin = load_source(tmp_path / "hf", LABELS, 2.0)
    expected = source.model.encoder.state_dict()
    imported = model.encoder.state_dict()
    positions = expected.pop("embed_positions.weight")
    assert torch.equal(imported.pop("embed_positions.weight"), positions[:100])
    assert all(torch.equal(imported[k], expected[k]) for k in expected)
    assert model.config.num_labels == 3 and origin["format"] == "hf-whisper"


def test_wav2vec2_family_folder_keeps_its_normalisation(tmp_path):
    source, extractor = build_teacher("wav2vec2-tiny", LABELS, 1.0)
    source.save_pretrained(tmp_path / "w2v")
    extractor.save_pretrained(tmp_path / "w2v")
    assert detect_source(tmp_path / "w2v") == "hf-wav2vec2"
    model, loaded_extractor, origin = load_source(tmp_path / "w2v", LABELS, None)
    assert loaded_extractor.do_normalize
    state = source.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert origin["sha256"] == file_sha256(tmp_path / "w2v" / "model.safetensors")


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda p: p.mkdir() or p, "no config.json"),
        (
            lambda p: p.mkdir() or (p / "config.json").write_text('{"model_type": "bert"}') and p,
            "model type 'bert' is not an importable teacher",
        ),
        (
            lambda p: p.with_suffix(".txt").write_text("x") and p.with_suffix(".txt"),
            "must be an OpenAI whisper .pt",
        ),
        (lambda p: p, "no such file or folder"),
    ],
)
def test_anything_else_is_refused_in_one_line(tmp_path, make, problem):
    path = make(tmp_path / "source")
    with pytest.raises(CheckpointError, match=problem) as error:
        detect_source(path)
    assert "\n" not in str(error.value)


def test_reader_errors_name_the_file(arrays, tmp_path):
    folder = ctranslate2_folder(tmp_path / "ct2", arrays)
    data = (folder / "model.bin").read_bytes()
    (folder / "model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_source(folder, LABELS, 2.0)
    assert json.loads((folder / "config.json").read_text())  # the folder itself is untouched
    assert np.isfinite(arrays["positions"]).all()


def test_quantised_ctranslate2_weights_are_refused(arrays, tmp_path):
    folder = ctranslate2_folder(tmp_path / "ct2", arrays)
    variables = ctranslate2_variables(arrays)
    name = "encoder/layer_0/ffn/linear_0/weight"
    variables[name] = (variables[name] * 100).astype(np.int8)
    variables[name.replace("weight", "weight_scale")] = np.full(64, 100.0, dtype=np.float32)
    write_model_bin(folder / "model.bin", variables)
    with pytest.raises(CheckpointError, match="holds quantised weights"):
        load_source(folder, LABELS, 2.0)
