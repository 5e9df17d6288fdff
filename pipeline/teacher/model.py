"""The teacher: any Hugging Face audio-classification transformer with self-attention.

Built from a preset or a config file (``--config``), initialised from a local checkpoint
(``--init``), or loaded from a fine-tuned folder. The checkpoint's own input processing
(its ``preprocessor_config.json``) is saved with it and applied identically in
fine-tuning and in extraction: wav2vec 2.0 fed un-normalised audio silently learns nothing.

Only stage one and teacher fine-tuning import this module (stage two must not).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoFeatureExtractor,
    AutoModelForAudioClassification,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    WhisperConfig,
    WhisperFeatureExtractor,
)

from pipeline.data.manifest import LabelSet
from pipeline.errors import CheckpointError, TkdError
from pipeline.teacher.presets import PRESETS

FRAMES_PER_SECOND = 50  # wav2vec 2.0 and the Whisper encoder both emit 20 ms frames

# Self-attention modules of the encoder layers, in every supported family.
_ATTENTION_NAME = re.compile(r"encoder\.layers\.(\d+)\.(attention|self_attn)$")
SUPPORTED_FAMILIES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio", "whisper")


def _family(model_type: str) -> str:
    if model_type not in SUPPORTED_FAMILIES:
        raise TkdError(
            f"teacher model type {model_type!r} is not supported; use one of {SUPPORTED_FAMILIES}"
        )
    return "whisper" if model_type == "whisper" else "wav2vec2"


def _label_maps(labels: LabelSet) -> dict:
    return {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels.names)),
        "label2id": {name: index for index, name in enumerate(labels.names)},
        "problem_type": (
            "multi_label_classification" if labels.multi_label else "single_label_classification"
        ),
    }


def build_teacher(config: str, labels: LabelSet, clip_seconds: float) -> tuple[nn.Module, object]:
    """A from-scratch teacher and its feature extractor, from a preset name or a JSON file.

    A JSON file holds a preset's keys (``family`` plus the HF config fields). Whisper
    encoders take a fixed input length: the longest clip, rounded up to whole seconds.
    """
    if config in PRESETS:
        settings = dict(PRESETS[config])
    else:
        path = Path(config)
        if not path.is_file():
            raise TkdError(
                f"--config {config!r} is neither a preset ({', '.join(PRESETS)}) nor a file"
            )
        try:
            settings = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise CheckpointError(path, f"not valid JSON ({error.msg})") from None
    family = settings.pop("family", "wav2vec2")
    if family == "whisper":
        seconds = max(1, math.ceil(clip_seconds - 1e-6))
        model_config = WhisperConfig(
            **settings,
            max_source_positions=seconds * FRAMES_PER_SECOND,
            decoder_layers=1,
            decoder_attention_heads=settings.get("encoder_attention_heads", 6),
            **_label_maps(labels),
        )
        extractor = WhisperFeatureExtractor(
            feature_size=model_config.num_mel_bins, chunk_length=seconds
        )
    elif family == "wav2vec2":
        model_config = Wav2Vec2Config(**settings, **_label_maps(labels))
        extractor = Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True)
    else:
        raise TkdError(f"unknown teacher family {family!r}; use 'wav2vec2' or 'whisper'")
    model = AutoModelForAudioClassification.from_config(model_config, attn_implementation="eager")
    return model, extractor


def init_teacher(directory: str | Path, labels: LabelSet) -> tuple[nn.Module, object]:
    """A local pretrained checkpoint with a fresh classifier for ``labels`` (never the hub)."""
    directory = _checkpoint_folder(directory)
    model = AutoModelForAudioClassification.from_pretrained(
        directory,
        local_files_only=True,
        ignore_mismatched_sizes=True,
        attn_implementation="eager",
        **_label_maps(labels),
    )
    _family(model.config.model_type)
    return model, AutoFeatureExtractor.from_pretrained(directory, local_files_only=True)


def _checkpoint_folder(directory: str | Path) -> Path:
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise CheckpointError(directory, "not a local Hugging Face checkpoint (no config.json)")
    if not (directory / "preprocessor_config.json").is_file():
        raise CheckpointError(directory, "has no preprocessor_config.json (its input processing)")
    return directory


def teacher_fingerprint(directory: str | Path) -> str:
    """Hash of the weights, config and input processing: a changed teacher changes the key."""
    directory = _checkpoint_folder(directory)
    digest = hashlib.sha256()
    for path in sorted(directory.iterdir()):
        if path.suffix in {".json", ".safetensors", ".bin"} and path.name != "metrics.json":
            digest.update(path.name.encode())
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 22), b""):
                    digest.update(block)
    return digest.hexdigest()


@dataclass
class TeacherOutput:
    logits: torch.Tensor  # [B, C] float32
    maps: torch.Tensor  # [B, layers, T, T] head-averaged attention, float32, on the device
    frames: torch.Tensor  # [B] real (unpadded) frames per clip


class Teacher:
    """A loaded teacher that turns waveforms into logits and head-averaged attention maps.

    Attention is captured with forward hooks on the encoder's self-attention modules and
    averaged over heads as each layer runs, so the [heads, T, T] tensors never pile up.
    """

    def __init__(self, model: nn.Module, extractor: object, device: str = "cpu"):
        self.model = model.to(device).eval()
        self.extractor = extractor
        self.device = torch.device(device)
        self.family = _family(model.config.model_type)
        self.sample_rate = int(extractor.sampling_rate)
        self.classes = [model.config.id2label[i] for i in range(model.config.num_labels)]
        self.attention_modules = [
            module for name, module in model.named_modules() if _ATTENTION_NAME.search(name)
        ]
        if not self.attention_modules:
            raise TkdError(f"found no encoder self-attention in {type(model).__name__}")

    # The classifier of every supported family mean-pools the frames, so the temporal
    # vector is the mean over rows of the rollout (a first-token classifier would read row 0).
    reduction = "mean-row"

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> Teacher:
        directory = _checkpoint_folder(directory)
        try:
            model = AutoModelForAudioClassification.from_pretrained(
                directory, local_files_only=True, attn_implementation="eager"
            )
        except OSError as error:
            raise CheckpointError(directory, f"cannot be loaded ({error})") from None
        return cls(model, AutoFeatureExtractor.from_pretrained(directory), device)

    @property
    def num_layers(self) -> int:
        return len(self.attention_modules)

    @property
    def min_samples(self) -> int:
        """Samples the teacher needs for one frame: wav2vec 2.0's convolutional receptive
        field (400 at 16 kHz, 25 ms); Whisper pads every clip to its window anyway."""
        if self.family == "whisper":
            return 1
        config, field, stride = self.model.config, 1, 1
        for kernel, step in zip(config.conv_kernel, config.conv_stride, strict=True):
            field += (kernel - 1) * stride
            stride *= step
        return field

    @property
    def max_samples(self) -> int | None:
        """Longest input the teacher sees whole: Whisper's fixed window; None for wav2vec 2.0."""
        return int(self.extractor.n_samples) if self.family == "whisper" else None

    def length_problem(self, samples: int) -> str | None:
        """Why a clip of ``samples`` cannot go through the teacher whole, or None.

        Whisper crops its input to a fixed window: attention over a cropped clip would be
        laid over the whole clip downstream, so a clip longer than the window by more than
        one frame (rounding) is refused rather than silently cropped.
        """
        limit = self.max_samples
        if limit is None or samples <= limit + self.sample_rate // FRAMES_PER_SECOND:
            return None
        return (
            f"{samples / self.sample_rate:.2f} s is longer than the teacher's "
            f"{limit / self.sample_rate:g} s input window (it would be cropped); "
            "use a teacher built for clips this long"
        )

    def prepare(self, waves: list[torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Model inputs for a batch of mono waveforms, and each clip's real frame count.

        A clip shorter than one teacher frame (``min_samples``) is zero-padded at the end
        to one frame; a clip longer than the teacher's window raises :class:`TkdError`.
        """
        for wave in waves:
            problem = self.length_problem(len(wave))
            if problem:
                raise TkdError(f"a clip of {problem}")
        shortest = self.min_samples
        arrays = [
            torch.nn.functional.pad(wave, (0, shortest - len(wave))).numpy()
            if len(wave) < shortest
            else wave.numpy()
            for wave in waves
        ]
        samples = torch.tensor([len(a) for a in arrays])
        if self.family == "whisper":
            inputs = self.extractor(
                arrays, sampling_rate=self.sample_rate, return_tensors="pt", padding="max_length"
            )
            inputs = {"input_features": inputs["input_features"]}
            limit = self.model.config.max_source_positions
            frames = torch.clamp(torch.div(samples + 319, 320, rounding_mode="floor"), 1, limit)
        else:
            inputs = self.extractor(
                arrays,
                sampling_rate=self.sample_rate,
                return_tensors="pt",
                padding=True,
                return_attention_mask=True,
            )
            inputs = {
                "input_values": inputs["input_values"],
                "attention_mask": inputs["attention_mask"],
            }
            frames = self.model._get_feat_extract_output_lengths(samples).clamp_min(1)
        return {k: v.to(self.device) for k, v in inputs.items()}, frames.to(self.device)

    @torch.no_grad()
    def attend(self, waves: list[torch.Tensor]) -> TeacherOutput:
        """Run the teacher on a batch; bf16 autocast on CUDA."""
        inputs, frames = self.prepare(waves)
        captured: list[torch.Tensor] = []

        def keep_head_mean(_module, _inputs, outputs):
            weights = outputs[1]
            if weights is None:
                raise TkdError(
                    "the teacher returned no attention weights; load it with eager attention"
                )
            captured.append(weights.float().mean(dim=1))

        handles = [m.register_forward_hook(keep_head_mean) for m in self.attention_modules]
        try:
            with torch.autocast(
                self.device.type, torch.bfloat16, enabled=self.device.type == "cuda"
            ):
                logits = self.model(**inputs).logits.float()
        finally:
            for handle in handles:
                handle.remove()
        return TeacherOutput(logits, torch.stack(captured, dim=1), frames)
