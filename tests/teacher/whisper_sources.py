"""Tiny pretrained-Whisper sources written by the tests, and an independent forward pass.

The arrays are random; a CTranslate2 ``model.bin`` and an OpenAI ``.pt`` are written from
them in each format's own naming, so conversion is checked against the arrays themselves,
not against the code under test.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

D_MODEL, HEADS, FFN, MELS, LAYERS, POSITIONS = 32, 2, 64, 16, 2, 150  # a 3 s table

DTYPE_IDS = {np.float32: 0, np.int8: 1, np.int16: 2, np.int32: 3, np.float16: 4}


def _string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def write_model_bin(
    path: Path,
    variables: dict[str, np.ndarray],
    aliases: dict[str, str] | None = None,
    version: int = 6,
    spec: str = "WhisperSpec",
    dtype_ids: dict[str, int] | None = None,
) -> Path:
    """A CTranslate2 model.bin, written field by field as CTranslate2's converter does."""
    out = [struct.pack("<I", version), _string(spec), struct.pack("<I", 3)]
    out.append(struct.pack("<I", len(variables)))
    for name, array in variables.items():
        array = np.array(array, order="C")
        dtype_id = (dtype_ids or {}).get(name, DTYPE_IDS.get(array.dtype.type))
        out += [_string(name), struct.pack("<B", array.ndim)]
        out += [struct.pack("<I", dim) for dim in array.shape]
        out += [struct.pack("<B", dtype_id), struct.pack("<I", array.nbytes), array.tobytes()]
    out.append(struct.pack("<I", len(aliases or {})))
    for alias, target in (aliases or {}).items():
        out += [_string(alias), _string(target)]
    path.write_bytes(b"".join(out))
    return path


def random_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Encoder arrays in a neutral naming (OpenAI-like), float32."""
    rng = np.random.default_rng(seed)

    def r(*shape, scale=0.2):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    arrays = {
        "conv1.weight": r(D_MODEL, MELS, 3),
        "conv1.bias": r(D_MODEL),
        "conv2.weight": r(D_MODEL, D_MODEL, 3),
        "conv2.bias": r(D_MODEL),
        "positions": r(POSITIONS, D_MODEL),
        "ln_post.weight": 1 + r(D_MODEL),
        "ln_post.bias": r(D_MODEL),
    }
    for i in range(LAYERS):
        for name in ("query", "key", "value", "out"):
            arrays[f"{i}.{name}.weight"] = r(D_MODEL, D_MODEL)
            if name != "key":
                arrays[f"{i}.{name}.bias"] = r(D_MODEL)
        for ln in ("attn_ln", "mlp_ln"):
            arrays[f"{i}.{ln}.weight"] = 1 + r(D_MODEL)
            arrays[f"{i}.{ln}.bias"] = r(D_MODEL)
        arrays[f"{i}.fc1.weight"], arrays[f"{i}.fc1.bias"] = r(FFN, D_MODEL), r(FFN)
        arrays[f"{i}.fc2.weight"], arrays[f"{i}.fc2.bias"] = r(D_MODEL, FFN), r(D_MODEL)
    return arrays


def ctranslate2_variables(a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    v = {
        "encoder/conv1/weight": a["conv1.weight"],
        "encoder/conv1/bias": a["conv1.bias"],
        "encoder/conv2/weight": a["conv2.weight"],
        "encoder/conv2/bias": a["conv2.bias"],
        "encoder/num_heads": np.array(HEADS, dtype=np.int16),
        "encoder/position_encodings/encodings": a["positions"],
        "encoder/layer_norm/gamma": a["ln_post.weight"],
        "encoder/layer_norm/beta": a["ln_post.bias"],
    }
    for i in range(LAYERS):
        p = f"encoder/layer_{i}/"
        v[p + "self_attention/linear_0/weight"] = np.concatenate(
            [a[f"{i}.query.weight"], a[f"{i}.key.weight"], a[f"{i}.value.weight"]]
        )
        v[p + "self_attention/linear_0/bias"] = np.concatenate(
            [a[f"{i}.query.bias"], np.zeros(D_MODEL, np.float32), a[f"{i}.value.bias"]]
        )
        v[p + "self_attention/linear_1/weight"] = a[f"{i}.out.weight"]
        v[p + "self_attention/linear_1/bias"] = a[f"{i}.out.bias"]
        v[p + "self_attention/layer_norm/gamma"] = a[f"{i}.attn_ln.weight"]
        v[p + "self_attention/layer_norm/beta"] = a[f"{i}.attn_ln.bias"]
        v[p + "ffn/linear_0/weight"], v[p + "ffn/linear_0/bias"] = (
            a[f"{i}.fc1.weight"],
            a[f"{i}.fc1.bias"],
        )
        v[p + "ffn/linear_1/weight"], v[p + "ffn/linear_1/bias"] = (
            a[f"{i}.fc2.weight"],
            a[f"{i}.fc2.bias"],
        )
        v[p + "ffn/layer_norm/gamma"] = a[f"{i}.mlp_ln.weight"]
        v[p + "ffn/layer_norm/beta"] = a[f"{i}.mlp_ln.bias"]
    return v


def openai_checkpoint(a: dict[str, np.ndarray]) -> dict:
    """What ``whisper`` saves: dims and an OpenAI-named state dict (decoder left out)."""
    state = {
        "encoder.conv1.weight": a["conv1.weight"],
        "encoder.conv1.bias": a["conv1.bias"],
        "encoder.conv2.weight": a["conv2.weight"],
        "encoder.conv2.bias": a["conv2.bias"],
        "encoder.positional_embedding": a["positions"],
        "encoder.ln_post.weight": a["ln_post.weight"],
        "encoder.ln_post.bias": a["ln_post.bias"],
    }
    names = {"query": "attn.query", "key": "attn.key", "value": "attn.value", "out": "attn.out"}
    names |= {"attn_ln": "attn_ln", "mlp_ln": "mlp_ln", "fc1": "mlp.0", "fc2": "mlp.2"}
    for key, array in a.items():
        first, _, rest = key.partition(".")
        if first.isdigit():
            module, _, part = rest.partition(".")
            state[f"encoder.blocks.{first}.{names[module]}.{part}"] = array
    dims = dict(
        n_mels=MELS,
        n_audio_ctx=POSITIONS,
        n_audio_state=D_MODEL,
        n_audio_head=HEADS,
        n_audio_layer=LAYERS,
        n_vocab=51864,
        n_text_ctx=448,
        n_text_state=D_MODEL,
        n_text_head=HEADS,
        n_text_layer=LAYERS,
    )
    return {"dims": dims, "model_state_dict": {k: torch.from_numpy(v) for k, v in state.items()}}


def reference_encoder(a: dict[str, np.ndarray], features: torch.Tensor) -> torch.Tensor:
    """Whisper's encoder written out from the paper/OpenAI code: [B, mels, 2T] -> [B, T, D]."""
    t = {k: torch.from_numpy(v) for k, v in a.items()}
    x = F.gelu(F.conv1d(features, t["conv1.weight"], t["conv1.bias"], padding=1))
    x = F.gelu(F.conv1d(x, t["conv2.weight"], t["conv2.bias"], stride=2, padding=1))
    x = x.transpose(1, 2)
    x = x + t["positions"][: x.shape[1]]
    batch, frames, _ = x.shape
    for i in range(LAYERS):
        h = F.layer_norm(x, (D_MODEL,), t[f"{i}.attn_ln.weight"], t[f"{i}.attn_ln.bias"])

        def heads(y):
            return y.view(batch, frames, HEADS, -1).transpose(1, 2)

        q = heads(F.linear(h, t[f"{i}.query.weight"], t[f"{i}.query.bias"]))
        k = heads(F.linear(h, t[f"{i}.key.weight"]))
        v = heads(F.linear(h, t[f"{i}.value.weight"], t[f"{i}.value.bias"]))
        weights = torch.softmax(q @ k.transpose(-1, -2) / (q.shape[-1] ** 0.5), dim=-1)
        attended = (weights @ v).transpose(1, 2).reshape(batch, frames, D_MODEL)
        x = x + F.linear(attended, t[f"{i}.out.weight"], t[f"{i}.out.bias"])
        h = F.layer_norm(x, (D_MODEL,), t[f"{i}.mlp_ln.weight"], t[f"{i}.mlp_ln.bias"])
        h = F.gelu(F.linear(h, t[f"{i}.fc1.weight"], t[f"{i}.fc1.bias"]))
        x = x + F.linear(h, t[f"{i}.fc2.weight"], t[f"{i}.fc2.bias"])
    return F.layer_norm(x, (D_MODEL,), t["ln_post.weight"], t["ln_post.bias"])


def ctranslate2_folder(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    """A faster-whisper-style folder: model.bin plus a config.json without model_type."""
    folder.mkdir(parents=True, exist_ok=True)
    write_model_bin(folder / "model.bin", ctranslate2_variables(arrays))
    (folder / "config.json").write_text('{"suppress_ids": [], "lang_ids": []}')
    return folder
