"""Stage two's side of cached views: each epoch a training clip plays one view the
teacher heard, rebuilt from the parameters the cache stored.

The view is drawn uniformly from 0..K-1 (view 0, the clip as it is, included) from
(seed, clip id, epoch) only, so it is the same whatever the worker, the batch or a
resume, and changes from epoch to epoch. The epoch reaches DataLoader workers with each
index (:class:`EpochSampler`), not through state that persistent workers would not see.
Features of a replayed view are computed on the fly where the item is loaded (in the
workers), with the student's front end on the waveform ``views.view_source`` rebuilds.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import RandomSampler, Sampler

from pipeline.cache import TeacherCache
from pipeline.data.audio import fit_length
from pipeline.data.augment import ViewParams
from pipeline.data.manifest import Clip, Manifest
from pipeline.data.recipes.common import stable_hash
from pipeline.data.views import view_source
from pipeline.errors import TkdError
from pipeline.student.features import FeatureConfig, FrontEnd
from pipeline.training import label_target

REPLAY_STREAM = 0x7265_706C  # "repl": keeps the epoch's view draw apart from other streams


def drawn_view(seed: int, clip_id: str, epoch: int, views: int) -> int:
    """The view (0..views-1) a training clip plays in ``epoch``."""
    if views == 1:
        return 0
    rng = np.random.default_rng([seed, stable_hash(clip_id), REPLAY_STREAM, epoch])
    return int(rng.integers(views))


class EpochSampler(Sampler[tuple[int, int]]):
    """Shuffled ``(index, epoch)`` pairs, in the order ``shuffle=True`` would give the
    indices with the same generator; set ``epoch`` before each epoch."""

    def __init__(self, size: int, generator: torch.Generator):
        self.order, self.epoch = RandomSampler(range(size), generator=generator), 0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((index, self.epoch) for index in self.order)

    def __len__(self) -> int:
        return len(self.order)


class ViewReplay:
    """Which view a training clip plays in an epoch, and that view's features and labels.

    Labels are the clip's own, except for ``mix`` views of a multi-label dataset, which
    carry the union of both clips' labels (the partner is audible, -6..0 dB by default);
    a single-label clip keeps its own label: it is the louder of the two, and the
    teacher's logits on the mixture (with logit KD) say how much of the partner it hears.
    """

    def __init__(
        self,
        manifest: Manifest,
        cache: TeacherCache,
        views: int,
        seed: int,
        config: FeatureConfig,
        samples: int,
    ):
        if views > cache.views:
            raise TkdError(
                f"{cache.directory}: holds {cache.views} view(s) per clip, --views {views} "
                f"asks for more: extract-teacher with --views {views} or more"
            )
        self.manifest, self.cache, self.views, self.seed = manifest, cache, views, seed
        self.samples, self.front_end = samples, FrontEnd(config)

    def view(self, clip_id: str, epoch: int) -> int:
        return drawn_view(self.seed, clip_id, epoch, self.views)

    def params(self, clip_id: str, view: int) -> ViewParams:
        return self.cache.params(clip_id, view)

    def features(self, params: Sequence[ViewParams]) -> torch.Tensor:
        """[views, T, F]: the front end on each replayed waveform, padded or cropped to
        ``samples`` as the feature bank does the clean clips, in one batched call."""
        rate = self.front_end.config.sample_rate
        waves = [fit_length(view_source(self.manifest, p).wave(rate), self.samples) for p in params]
        with torch.no_grad():
            return self.front_end(torch.stack(waves))

    def target(self, clip: Clip, params: ViewParams) -> torch.Tensor:
        target = label_target(self.manifest, clip)
        if params.partner is not None and self.manifest.labels.multi_label:
            return torch.maximum(
                target, label_target(self.manifest, self.manifest[params.partner.clip_id])
            )
        return target
