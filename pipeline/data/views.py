"""A dataset's views: the split rules and audio around :mod:`pipeline.data.augment`.

``augment`` draws and applies a view from what its caller allows; this module is that
caller for both stages. A clip's ``remix`` noise comes only from its own split's region of
each noise file the dataset uses (:data:`~pipeline.data.recipes.common.NOISE_REGIONS`,
from the clip's current split, so re-split folds stay disjoint too), and its ``mix``
partners only from its own split. Stage one renders views from :func:`draw_views`;
stage two rebuilds one from the parameters the cache stored (:func:`view_source`) and
hears bit for bit what the teacher heard.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch

from pipeline.data.audio import cached_audio, load_audio
from pipeline.data.augment import NoiseRegion, ViewParams, ViewSettings, apply, draw_view
from pipeline.data.manifest import Clip, Manifest
from pipeline.data.recipes.noisy import noise_region
from pipeline.errors import TkdError


@dataclass(frozen=True)
class ViewSource:
    """One view and the audio it is made of: plain data, so it travels to workers."""

    clip: Clip
    audio: str  # the clip's audio file
    params: ViewParams
    partner_audio: str | None = None  # the ``mix`` partner's audio file (its view 0)

    def wave(self, sample_rate: int) -> torch.Tensor:
        """The view's waveform; raises :class:`AudioError` naming any unreadable file."""
        partner = load_audio(self.partner_audio, sample_rate) if self.partner_audio else None
        return apply(
            load_audio(self.audio, sample_rate),
            sample_rate,
            self.params,
            clip=self.clip,
            load_audio=lambda path: cached_audio(path, sample_rate),
            partner_wave=partner,
        )


def split_noise_regions(manifest: Manifest, sample_rate: int) -> dict[str, list[NoiseRegion]]:
    """Per split, its region (seconds) of every noise file the dataset's mixes use."""
    files = sorted({clip.mix["noise"] for clip in manifest if clip.mix and "noise" in clip.mix})
    regions: dict[str, list[NoiseRegion]] = {}
    for split in sorted({clip.split for clip in manifest}):
        regions[split] = []
        for path in files:
            start, end = noise_region(path, split, sample_rate)
            regions[split].append(NoiseRegion(path, start / sample_rate, end / sample_rate))
    return regions


def draw_views(
    manifest: Manifest, count: int, seed: int, settings: ViewSettings, sample_rate: int
) -> dict[str, tuple[ViewSource, ...]]:
    """Views 0..count-1 of every clip, by clip id; a draw the data cannot satisfy (remix
    without a noisy-mix record, mix in a one-clip split) is refused naming the clip."""
    regions = split_noise_regions(manifest, sample_rate) if "remix" in settings.augment else {}
    partners: dict[str, list[str]] = defaultdict(list)
    for clip in manifest:
        partners[clip.split].append(clip.id)
    views = {}
    for clip in manifest:
        noise, others = regions.get(clip.split, ()), partners[clip.split]
        try:
            drawn = [draw_view(clip, view, seed, settings, noise, others) for view in range(count)]
        except ValueError as error:
            raise TkdError(f"{manifest.root}: cannot draw views: {error}") from None
        views[clip.id] = tuple(_source(manifest, clip, params) for params in drawn)
    return views


def view_source(manifest: Manifest, params: ViewParams) -> ViewSource:
    """What rebuilding a stored view needs, from its parameters (stage two's replay)."""
    for clip_id in (params.clip_id, params.partner.clip_id if params.partner else None):
        if clip_id is not None and clip_id not in manifest:
            raise TkdError(
                f"{manifest.root}: view {params.view} of {params.clip_id!r} needs clip "
                f"{clip_id!r}, which the dataset does not hold"
            )
    return _source(manifest, manifest[params.clip_id], params)


def _source(manifest: Manifest, clip: Clip, params: ViewParams) -> ViewSource:
    partner = manifest[params.partner.clip_id] if params.partner else None
    return ViewSource(
        clip,
        str(manifest.audio_path(clip)),
        params,
        str(manifest.audio_path(partner)) if partner else None,
    )
