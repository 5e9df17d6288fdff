"""Pretrained checkpoints -> tkd teachers: detect the source, convert it, cut the window.

Four kinds of source are recognised from their content:

- ``ctranslate2``: a CTranslate2 / faster-whisper Whisper folder (``model.bin`` + a
  ``config.json`` without ``model_type``);
- ``openai-whisper``: an OpenAI ``whisper`` checkpoint (``.pt`` with ``dims`` and
  ``model_state_dict``), read with ``weights_only=True`` so it can never execute code;
- ``hf-whisper``: a Hugging Face Whisper folder (any head; only the encoder is kept);
- ``hf-wav2vec2``: a Hugging Face wav2vec 2.0 / XLS-R / HuBERT / WavLM / data2vec-audio
  folder, kept as it is with its own feature extractor (its normalisation matters).

Whisper encoders are trained on a fixed 30 s window and mean-pool every frame of it,
padding included; the window is therefore cut to the clip length: the first T rows of the
positional table are kept (T = 50 per second) and every other weight is unchanged.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForAudioClassification, WhisperConfig, WhisperFeatureExtractor

from pipeline.data.manifest import LabelSet
from pipeline.errors import CheckpointError, TkdError
from pipeline.files import file_sha256
from pipeline.teacher.ctranslate2 import read_model_bin
from pipeline.teacher.model import FRAMES_PER_SECOND, _label_maps, init_teacher
from pipeline.teacher.pretrained import PRETRAINED, locate

SOURCE_KINDS = ("ctranslate2", "openai-whisper", "hf-whisper", "hf-wav2vec2")
PROVENANCE_FILE = "source.json"  # a .json file: teacher_fingerprint (the cache key) hashes it
_WAV2VEC2_TYPES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")
_HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


@dataclass
class WhisperEncoderWeights:
    """A Whisper encoder in Hugging Face naming, with its full positional table."""

    config: dict  # d_model, encoder_layers, encoder_attention_heads, encoder_ffn_dim, num_mel_bins
    state: dict[str, torch.Tensor]  # WhisperEncoder.state_dict() keys


def detect_source(path: str | Path) -> str:
    """Which of :data:`SOURCE_KINDS` ``path`` holds, or one line saying why it is none."""
    path = Path(path)
    if path.is_file():
        if path.suffix == ".pt":
            return "openai-whisper"
        raise CheckpointError(path, "a file teacher source must be an OpenAI whisper .pt")
    if not path.is_dir():
        raise CheckpointError(path, "no such file or folder")
    config_path = path / "config.json"
    if not config_path.is_file():
        raise CheckpointError(path, "not a checkpoint folder (no config.json)")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(config_path, f"not valid JSON ({error.msg})") from None
    model_type = config.get("model_type")
    if model_type is None and (path / "model.bin").is_file():
        return "ctranslate2"
    if model_type == "whisper":
        return "hf-whisper"
    if model_type in _WAV2VEC2_TYPES:
        return "hf-wav2vec2"
    raise CheckpointError(
        path,
        f"model type {model_type!r} is not an importable teacher; give a CTranslate2 Whisper "
        f"folder, an OpenAI whisper .pt, or a Hugging Face Whisper or {'/'.join(_WAV2VEC2_TYPES)}"
        " folder",
    )


def _weights_file(path: Path, kind: str) -> Path:
    if kind == "openai-whisper":
        return path
    if kind == "ctranslate2":
        return path / "model.bin"
    for name in _HF_WEIGHTS:
        if (path / name).is_file():
            return path / name
    raise CheckpointError(path, f"has no single weight file ({' or '.join(_HF_WEIGHTS)})")


def provenance(path: str | Path, kind: str, weights: Path, sha256: str | None = None) -> dict:
    """Where a teacher's weights came from: recorded in the teacher folder."""
    return {
        "source": str(path),
        "format": kind,
        "weights": str(weights),
        "sha256": sha256 or file_sha256(weights),
    }


def _tensor(array) -> torch.Tensor:
    return torch.from_numpy(array.astype("float32"))


def read_ctranslate2_encoder(model_bin: str | Path) -> WhisperEncoderWeights:
    """The encoder of a CTranslate2 Whisper model; its shape is read from the file."""
    model = read_model_bin(model_bin)
    if model.spec != "WhisperSpec":
        raise CheckpointError(model_bin, f"holds a {model.spec}, not a Whisper model")
    v = model.variables
    quantised = [n for n in v if n.startswith("encoder/") and n.endswith("weight_scale")]
    if quantised:
        raise CheckpointError(
            model_bin,
            f"holds quantised weights ({quantised[0]}); convert it with "
            "--quantization float32 or float16",
        )
    layers = sorted(
        {int(m.group(1)) for name in v if (m := re.match(r"encoder/layer_(\d+)/", name))}
    )
    if not layers or layers != list(range(len(layers))):
        raise CheckpointError(model_bin, "has no complete encoder/layer_N variables")
    d_model, mels, _ = v["encoder/conv1/weight"].shape
    if "encoder/num_heads" in v:
        heads = int(v["encoder/num_heads"].item())
    else:
        heads = d_model // 64  # every Whisper size uses 64-dimensional heads
    state = {
        "embed_positions.weight": _tensor(v["encoder/position_encodings/encodings"]),
        "layer_norm.weight": _tensor(v["encoder/layer_norm/gamma"]),
        "layer_norm.bias": _tensor(v["encoder/layer_norm/beta"]),
    }
    for conv in ("conv1", "conv2"):
        for part in ("weight", "bias"):
            state[f"{conv}.{part}"] = _tensor(v[f"encoder/{conv}/{part}"])
    for i in layers:
        source, target = f"encoder/layer_{i}/", f"layers.{i}."
        for key in ("weight", "bias"):
            q, k, val = _tensor(v[source + f"self_attention/linear_0/{key}"]).chunk(3)
            state[target + f"self_attn.q_proj.{key}"] = q
            state[target + f"self_attn.v_proj.{key}"] = val
            if key == "weight":  # Whisper's key projection has no bias (CTranslate2 stores 0)
                state[target + "self_attn.k_proj.weight"] = k
        pairs = {
            "self_attention/linear_1": "self_attn.out_proj",
            "ffn/linear_0": "fc1",
            "ffn/linear_1": "fc2",
        }
        for name, hf in pairs.items():
            for key in ("weight", "bias"):
                state[target + f"{hf}.{key}"] = _tensor(v[source + f"{name}/{key}"])
        for name, hf in (("self_attention", "self_attn_layer_norm"), ("ffn", "final_layer_norm")):
            state[target + f"{hf}.weight"] = _tensor(v[source + f"{name}/layer_norm/gamma"])
            state[target + f"{hf}.bias"] = _tensor(v[source + f"{name}/layer_norm/beta"])
    config = dict(
        d_model=int(d_model),
        encoder_layers=len(layers),
        encoder_attention_heads=heads,
        encoder_ffn_dim=int(v["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        num_mel_bins=int(mels),
    )
    return WhisperEncoderWeights(config, state)


_OPENAI_NAMES = [
    (r"^encoder\.positional_embedding$", "embed_positions.weight"),
    (r"^encoder\.ln_post\.", "layer_norm."),
    (r"^encoder\.blocks\.(\d+)\.attn\.query\.", r"layers.\1.self_attn.q_proj."),
    (r"^encoder\.blocks\.(\d+)\.attn\.key\.", r"layers.\1.self_attn.k_proj."),
    (r"^encoder\.blocks\.(\d+)\.attn\.value\.", r"layers.\1.self_attn.v_proj."),
    (r"^encoder\.blocks\.(\d+)\.attn\.out\.", r"layers.\1.self_attn.out_proj."),
    (r"^encoder\.blocks\.(\d+)\.attn_ln\.", r"layers.\1.self_attn_layer_norm."),
    (r"^encoder\.blocks\.(\d+)\.mlp\.0\.", r"layers.\1.fc1."),
    (r"^encoder\.blocks\.(\d+)\.mlp\.2\.", r"layers.\1.fc2."),
    (r"^encoder\.blocks\.(\d+)\.mlp_ln\.", r"layers.\1.final_layer_norm."),
    (r"^encoder\.", ""),  # conv1, conv2
]


def read_openai_encoder(path: str | Path) -> WhisperEncoderWeights:
    """The encoder of an OpenAI ``whisper`` checkpoint (transformers 5 ships no converter)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # an unpickling refusal or a corrupt file: one line either way
        raise CheckpointError(
            path, f"not a plain-tensor OpenAI whisper checkpoint ({type(error).__name__})"
        ) from None
    if not isinstance(checkpoint, dict) or not {"dims", "model_state_dict"} <= checkpoint.keys():
        raise CheckpointError(path, "has no 'dims' and 'model_state_dict' (not OpenAI whisper)")
    dims, state = checkpoint["dims"], {}
    for name, tensor in checkpoint["model_state_dict"].items():
        for pattern, replacement in _OPENAI_NAMES:
            if re.match(pattern, name):
                state[re.sub(pattern, replacement, name)] = tensor.float()
                break
    config = dict(
        d_model=dims["n_audio_state"],
        encoder_layers=dims["n_audio_layer"],
        encoder_attention_heads=dims["n_audio_head"],
        encoder_ffn_dim=state["layers.0.fc1.weight"].shape[0],
        num_mel_bins=dims["n_mels"],
    )
    return WhisperEncoderWeights(config, state)


def _read_hf_state(path: Path) -> dict[str, torch.Tensor]:
    weights = _weights_file(path, "hf-whisper")
    if weights.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(weights)
    return torch.load(weights, map_location="cpu", weights_only=True)


def read_hf_whisper_encoder(path: str | Path) -> WhisperEncoderWeights:
    """The encoder of a Hugging Face Whisper folder, whatever head it was saved with."""
    path = Path(path)
    source = WhisperConfig.from_pretrained(path, local_files_only=True)
    state = {}
    for name, tensor in _read_hf_state(path).items():
        match = re.match(r"^(?:model\.)?encoder\.(.+)$", name)
        if match:
            state[match.group(1)] = tensor.float()
    config = {
        key: getattr(source, key)
        for key in (
            "d_model",
            "encoder_layers",
            "encoder_attention_heads",
            "encoder_ffn_dim",
            "num_mel_bins",
        )
    }
    return WhisperEncoderWeights(config, state)


def window_seconds(seconds: float) -> int:
    """Whole seconds of input window for clips up to ``seconds`` long."""
    if not seconds > 0:
        raise TkdError(f"the teacher window must be positive, not {seconds} s")
    return max(1, math.ceil(seconds - 1e-6))


def whisper_teacher(
    encoder: WhisperEncoderWeights, labels: LabelSet, seconds: float
) -> tuple[nn.Module, WhisperFeatureExtractor]:
    """An audio-classification teacher whose window is cut to ``seconds`` (rounded up)."""
    window = window_seconds(seconds)
    frames = window * FRAMES_PER_SECOND
    state = dict(encoder.state)
    table = state["embed_positions.weight"]
    if frames > table.shape[0]:
        raise TkdError(
            f"a {window} s window needs {frames} positions; the checkpoint has {table.shape[0]}"
        )
    state["embed_positions.weight"] = table[:frames].clone()
    config = WhisperConfig(
        **encoder.config,
        max_source_positions=frames,
        decoder_layers=1,
        decoder_attention_heads=encoder.config["encoder_attention_heads"],
        **_label_maps(labels),
    )
    model = AutoModelForAudioClassification.from_config(config, attn_implementation="eager")
    try:
        model.encoder.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise TkdError(f"the encoder weights do not fit a Whisper encoder: {error}") from None
    extractor = WhisperFeatureExtractor(feature_size=config.num_mel_bins, chunk_length=window)
    return model, extractor


_READERS = {
    "ctranslate2": lambda path: read_ctranslate2_encoder(Path(path) / "model.bin"),
    "openai-whisper": read_openai_encoder,
    "hf-whisper": read_hf_whisper_encoder,
}


def load_source(
    source: str | Path, labels: LabelSet, seconds: float | None
) -> tuple[nn.Module, object, dict]:
    """A teacher (model, feature extractor) and its provenance from a preset or a source.

    ``seconds`` (the longest clip) is required for Whisper sources, whose window is cut.
    """
    model_bin = None
    if str(source) in PRETRAINED:
        model_bin, sha256 = locate(str(source))
        kind, origin = "ctranslate2", provenance(source, "ctranslate2", model_bin, sha256)
    else:
        kind = detect_source(source)
        origin = provenance(Path(source).resolve(), kind, _weights_file(Path(source), kind))
        if kind == "hf-wav2vec2":
            model, extractor = init_teacher(source, labels)
            return model, extractor, origin
    if seconds is None:
        raise TkdError(f"{source}: a Whisper teacher needs the clip length (--seconds or --data)")
    encoder = read_ctranslate2_encoder(model_bin) if model_bin else _READERS[kind](source)
    model, extractor = whisper_teacher(encoder, labels, seconds)
    origin["window_seconds"] = window_seconds(seconds)
    return model, extractor, origin
