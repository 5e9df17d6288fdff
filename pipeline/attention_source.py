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
from collections.abc import Mapping

FALLBACK = "rollout"


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
