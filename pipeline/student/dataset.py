"""What a student sees: fixed-length feature frames, its target, and the teacher's
cached knowledge resampled to the student's own time steps.

Features are computed once per (dataset, front end, length) and kept on disk beside the
dataset, so a sweep of many student runs never recomputes them. Teacher targets are
read from the cache by clip id in DataLoader workers (shards opened lazily per process).
"""

from __future__ import annotations

import hashlib
import json
import os

import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from pipeline.cache import TeacherCache
from pipeline.data.audio import fit_length, load_audio
from pipeline.data.manifest import Clip, Manifest
from pipeline.student.features import FeatureConfig, FrontEnd
from pipeline.temporal import resample_distribution
from pipeline.training import label_target

FEATURE_FOLDER = ".features"


def clip_samples(manifest: Manifest, sample_rate: int) -> int:
    """Every clip is padded (at the end) or cropped to the dataset's longest clip."""
    return round(max(clip.duration for clip in manifest) * sample_rate)


class FeatureBank:
    """Features of every clip, computed once and stored in ``<dataset>/.features/``."""

    def __init__(self, manifest: Manifest, config: FeatureConfig, samples: int):
        self.config, self.samples = config, samples
        key = hashlib.sha256(
            json.dumps([manifest.fingerprint(), config.to_json(), samples]).encode()
        ).hexdigest()[:16]
        path = manifest.root / FEATURE_FOLDER / f"{key}.pt"
        if path.is_file():
            stored = torch.load(path)
        else:
            stored = self._compute(manifest)
            path.parent.mkdir(exist_ok=True)
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            torch.save(stored, temporary)
            os.replace(temporary, path)
        self.rows = {clip_id: row for row, clip_id in enumerate(stored["ids"])}
        self.features: torch.Tensor = stored["features"]

    def _compute(self, manifest: Manifest) -> dict:
        front_end = FrontEnd(self.config)
        features = []
        with torch.no_grad():
            for clip in tqdm(manifest.clips, desc="features", unit="clip", leave=False):
                wave = fit_length(
                    load_audio(manifest.audio_path(clip), self.config.sample_rate), self.samples
                )
                features.append(front_end(wave[None])[0])
        return {"ids": manifest.ids, "features": torch.stack(features)}

    def __getitem__(self, clip_id: str) -> torch.Tensor:
        return self.features[self.rows[clip_id]]

    @property
    def num_frames(self) -> int:
        return self.features.shape[1]


def teacher_target(
    vector: torch.Tensor, duration: float, padded_seconds: float, steps: int
) -> torch.Tensor:
    """The teacher's distribution over the clip's real span, laid onto the student's steps.

    Steps that cover padding (clips shorter than the padded length) get no mass.
    """
    real_steps = min(steps, max(1, round(steps * duration / padded_seconds)))
    target = torch.zeros(steps)
    target[:real_steps] = resample_distribution(vector, real_steps)
    return target


class StudentDataset(Dataset):
    """Items: ``features`` [T, F], ``target``, and with a cache ``teacher_attention`` [T']
    and ``teacher_logits`` [C]."""

    def __init__(
        self,
        manifest: Manifest,
        clips: list[Clip],
        bank: FeatureBank,
        cache: TeacherCache | None = None,
        attention_source: str = "rollout",
        student_steps: int | None = None,
    ):
        self.manifest, self.clips, self.bank, self.cache = manifest, clips, bank, cache
        self.attention_source, self.student_steps = attention_source, student_steps
        self.padded_seconds = bank.samples / bank.config.sample_rate
        if cache is not None:
            cache.row_of(attention_source)  # a teacher layer the cache lacks: refused now

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        clip = self.clips[index]
        item = {
            "features": self.bank[clip.id],
            "target": label_target(self.manifest, clip),
            "index": torch.tensor(index),
        }
        if self.cache is not None:
            vector = torch.from_numpy(self.cache.vector(clip.id, self.attention_source))
            item["teacher_attention"] = teacher_target(
                vector, clip.duration, self.padded_seconds, self.student_steps
            )
            item["teacher_logits"] = torch.from_numpy(self.cache.logits(clip.id))
        return item
