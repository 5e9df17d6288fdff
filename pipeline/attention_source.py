"""``--teacher-attention auto``: distil from where the teacher's temporal knowledge sits.

Which layer localises events differs by teacher: from-scratch Whisper teachers are most
localised in layer 1, pretrained Whisper tiny.en in its top layer (in-event mass
.29/.36/.59/.88 over layers 1-4, issue 12). A fixed default is wrong for one of them, so
``auto`` takes the stored source with the highest in-event mass, measured by stage one on
clips with event times; without event times nothing is measured and the full rollout is
the safe choice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import torch

from pipeline.cache import TeacherCache
from pipeline.data.manifest import Manifest
from pipeline.temporal import in_event_mass

AUTO = "auto"
FALLBACK = "rollout"


def in_event_mass_report(
    cache: TeacherCache, manifest: Manifest, clip_ids: Iterable[str] | None = None
) -> dict:
    """Mean share of the teacher's attention inside the labelled events, per stored layer.

    The first check that the teacher holds temporal knowledge worth distilling;
    ``uniform`` is what attention spread evenly over the clip would score. ``clip_ids``
    restricts it (``auto`` measures the training split only, never the test clips).
    """
    rollout, attention, uniform = [], [], []
    for clip_id in cache.ids if clip_ids is None else clip_ids:
        clip = manifest[clip_id]
        if not clip.events:
            continue
        record = cache.record(clip_id)
        rollout.append(in_event_mass(torch.from_numpy(record.rollout), clip.duration, clip.events))
        attention.append(
            in_event_mass(torch.from_numpy(record.attention), clip.duration, clip.events)
        )
        flat = torch.full((cache.resolution,), 1.0 / cache.resolution)
        uniform.append(float(in_event_mass(flat, clip.duration, clip.events)))
    if not rollout:
        return {}
    layers = cache.index.settings["layers"]
    return {
        "clips_with_events": len(rollout),
        "layers": layers,
        "rollout": [round(float(v), 4) for v in torch.stack(rollout).mean(0)],
        "attention": [round(float(v), 4) for v in torch.stack(attention).mean(0)],
        "uniform": round(float(np.mean(uniform)), 4),
    }


def source_masses(report: Mapping) -> dict[str, float]:
    """Stage one's ``in_event_mass`` summary -> {"rollout:K" | "layer:K": mass}.

    K is the teacher layer (``report["layers"]`` lists the stored ones, in order).
    """
    if not report:
        return {}
    masses = {}
    for layer, rollout, attention in zip(report["layers"], report["rollout"], report["attention"]):
        masses[f"rollout:{layer}"] = rollout
        masses[f"layer:{layer}"] = attention
    return masses


def choose_attention_source(in_event_mass_by_source: Mapping[str, float]) -> str:
    """The source with the highest in-event mass (first listed on a tie); NaN never wins;
    ``"rollout"`` when nothing was measured."""
    best, best_mass = FALLBACK, -math.inf
    for source, mass in in_event_mass_by_source.items():
        if mass is not None and not math.isnan(mass) and mass > best_mass:
            best, best_mass = source, mass
    return best


def resolve_attention_source(requested: str, cache: TeacherCache, manifest: Manifest) -> str:
    """``requested`` itself, or for ``auto`` the most localised stored source on the
    training split's clips."""
    if requested != AUTO:
        return requested
    train = [clip.id for clip in manifest.split("train")]
    return choose_attention_source(source_masses(in_event_mass_report(cache, manifest, train)))
