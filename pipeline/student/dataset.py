"""What a student sees: fixed-length feature frames, its target, and the teacher's
cached knowledge laid onto the student's own time steps (`pipeline.temporal`), one
vectorised call per batch.

Features are computed once per (dataset, front end, length) and kept on disk beside the
dataset, so a sweep of many student runs never recomputes them; the file is memory-mapped,
so a dataset larger than memory trains from the page cache. Teacher targets come from
:class:`~pipeline.student.targets.TeacherTargets` (in memory under a budget, else read by
clip id from the shards, opened lazily per DataLoader worker).
With cached views (:mod:`pipeline.student.replay`) a training item is the view its clip
plays that epoch: features from the replayed waveform (replayed once into a
:class:`ViewFeatureBank`, or on the fly where the item loads), the teacher's targets for it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import torch
from torch.utils.data import Dataset

from pipeline.data.audio import fit_length, load_audio
from pipeline.data.manifest import Clip, Manifest
from pipeline.files import write_atomic
from pipeline.progress import progress
from pipeline.student.features import FeatureConfig, FrontEnd
from pipeline.student.replay import ViewReplay
from pipeline.student.spec_augment import SpecAugment
from pipeline.student.targets import TeacherTargets
from pipeline.temporal import to_student_steps
from pipeline.training import label_target

FEATURE_FOLDER = ".features"


def clip_samples(manifest: Manifest, sample_rate: int) -> int:
    """Every clip is padded (at the end) or cropped to the dataset's longest clip."""
    return round(max(clip.duration for clip in manifest) * sample_rate)


def _stored(manifest: Manifest, prefix: str, made_from: list, compute: Callable[[], dict]) -> dict:
    """A tensor file in ``<dataset>/.features/`` named by what it is ``made_from``: read
    memory-mapped (pages read as used) when there, else computed and written atomically."""
    key = hashlib.sha256(json.dumps(made_from).encode()).hexdigest()[:16]
    path = manifest.root / FEATURE_FOLDER / f"{prefix}{key}.pt"
    if path.is_file():
        return torch.load(path, weights_only=True, mmap=True)
    stored = compute()
    path.parent.mkdir(exist_ok=True)
    write_atomic(path, lambda temporary: torch.save(stored, temporary))
    return stored


class FeatureBank:
    """Features of every clip, computed once and stored in ``<dataset>/.features/``."""

    def __init__(self, manifest: Manifest, config: FeatureConfig, samples: int):
        self.config, self.samples = config, samples
        made_from = [manifest.fingerprint(), config.to_json(), samples]
        stored = _stored(manifest, "", made_from, lambda: self._compute(manifest))
        self.rows = {clip_id: row for row, clip_id in enumerate(stored["ids"])}
        self.features: torch.Tensor = stored["features"]

    def _compute(self, manifest: Manifest) -> dict:
        front_end = FrontEnd(self.config)
        features = []
        with torch.no_grad():
            for clip in progress(manifest.clips, desc="features", unit="clip", leave=False):
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


class ViewFeatureBank:
    """Features of views 1..K-1 of ``clips``, replayed once and stored beside the clean
    clips' features: every run on the same cache reads them (memory-mapped) instead of
    rebuilding each view's waveform every epoch, so training long on views costs what
    training on clean clips does. K is the replay's ``views``; the file is named by the
    cache's key, so another cache or other views never read it."""

    def __init__(self, replay: ViewReplay, clips: list[Clip]):
        ids = [clip.id for clip in clips]
        made_from = [
            replay.manifest.fingerprint(),
            replay.cache.index.key,
            replay.views,
            replay.front_end.config.to_json(),
            replay.samples,
            hashlib.sha256("\n".join(ids).encode()).hexdigest(),
        ]
        stored = _stored(replay.manifest, "views-", made_from, lambda: _replay_all(replay, ids))
        self.rows = {clip_id: row for row, clip_id in enumerate(stored["ids"])}
        self.features: torch.Tensor = stored["features"]  # [clips, views - 1, T, F]

    def __getitem__(self, key: tuple[str, int]) -> torch.Tensor:
        clip_id, view = key
        return self.features[self.rows[clip_id], view - 1]


def _replay_all(replay: ViewReplay, ids: list[str]) -> dict:
    features = [
        replay.features([replay.params(clip_id, view) for view in range(1, replay.views)])
        for clip_id in progress(ids, desc="view features", unit="clip", leave=False)
    ]
    return {"ids": ids, "features": torch.stack(features)}


class StudentDataset(Dataset):
    """Items: ``features`` [T, F], ``target``, ``view``, and with teacher targets
    ``teacher_attention`` [T'] (on the student's ``student_steps``) and ``teacher_logits`` [C].

    An index is a position in ``clips`` or, from :class:`~pipeline.student.replay.EpochSampler`,
    ``(position, epoch)``; with a ``replay`` the latter plays the view drawn for that epoch,
    and with ``spec_augment`` its features are masked as drawn for (``seed``, clip, epoch).
    """

    def __init__(
        self,
        manifest: Manifest,
        clips: list[Clip],
        bank: FeatureBank,
        targets: TeacherTargets | None = None,
        student_steps: int | None = None,
        replay: ViewReplay | None = None,
        spec_augment: SpecAugment | None = None,
        seed: int = 0,
        view_bank: ViewFeatureBank | None = None,
    ):
        self.manifest, self.clips, self.bank, self.targets = manifest, clips, bank, targets
        self.replay, self.student_steps = replay, student_steps
        self.spec_augment, self.seed, self.view_bank = spec_augment, seed, view_bank
        self.padded_seconds = bank.samples / bank.config.sample_rate
        self.laid_targets = self._targets_on_student_steps()

    def _targets_on_student_steps(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """With the targets in memory, every (clip, view)'s teacher vector laid onto the
        student's steps once [clips, views, steps], and its logits [clips, views, classes]:
        a batch gathers rows instead of resampling them (row by row the same numbers)."""
        if self.targets is None or not self.targets.in_memory:
            return None
        views = self.targets.views
        vectors, logits = self.targets.batch(
            [clip.id for clip in self.clips for _ in range(views)], list(range(views)) * len(self)
        )
        durations = torch.tensor(
            [clip.duration for clip in self.clips for _ in range(views)], dtype=torch.float64
        )
        steps = to_student_steps(vectors, durations, self.padded_seconds, self.student_steps)
        return steps.view(len(self), views, -1), logits.view(len(self), views, -1)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int] | list[tuple[int, int]]) -> list[dict]:
        """A batch of items (DataLoader asks for whole batches through this method), so the
        teacher targets of the batch are resampled in one call, not one per clip."""
        positions = [index if isinstance(index, int) else index[0] for index in indices]
        clips = [self.clips[position] for position in positions]
        views = [0] * len(clips)
        if self.replay is not None:
            views = [
                0 if isinstance(index, int) else self.replay.view(clip.id, index[1])
                for index, clip in zip(indices, clips, strict=True)
            ]
        items = [
            {
                "features": self.bank[clip.id],
                "target": label_target(self.manifest, clip),
                "index": torch.tensor(position),
                "view": torch.tensor(view),
            }
            for position, clip, view in zip(positions, clips, views, strict=True)
        ]
        replayed = [i for i, view in enumerate(views) if view]
        if replayed:
            params = [self.replay.params(clips[i].id, views[i]) for i in replayed]
            replayed_features = (
                self.replay.features(params)
                if self.view_bank is None
                else [self.view_bank[clips[i].id, views[i]] for i in replayed]
            )
            for i, features, drawn in zip(replayed, replayed_features, params, strict=True):
                items[i]["features"] = features
                items[i]["target"] = self.replay.target(clips[i], drawn)
        if self.spec_augment is not None:
            for index, clip, item in zip(indices, clips, items, strict=True):
                if not isinstance(index, int):
                    item["features"] = self.spec_augment(
                        item["features"], self.seed, clip.id, index[1]
                    )
        if self.targets is not None:
            if self.laid_targets is not None:  # a gather, no resampling
                steps, logits = (laid[positions, views] for laid in self.laid_targets)
            else:
                vectors, logits = self.targets.batch([clip.id for clip in clips], views)
                durations = torch.tensor([clip.duration for clip in clips], dtype=torch.float64)
                steps = to_student_steps(
                    vectors, durations, self.padded_seconds, self.student_steps
                )
            for item, attention, scores in zip(items, steps.unbind(), logits.unbind(), strict=True):
                item["teacher_attention"], item["teacher_logits"] = attention, scores
        return items
