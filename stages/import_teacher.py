"""`tkd teacher import`: a pretrained checkpoint or preset -> a tkd teacher folder.

The folder is a Hugging Face ``save_pretrained`` audio-classification model with its
feature extractor, ready for ``finetune-teacher --init`` or ``extract-teacher``. It records
where its weights came from (``source.json``), which the extraction cache key covers.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.data.manifest import LabelSet, Manifest
from pipeline.errors import TkdError
from pipeline.files import write_json
from pipeline.teacher.importing import PROVENANCE_FILE, load_source

# A head is needed to save an audio-classification model; fine-tuning replaces it.
PLACEHOLDER_LABELS = LabelSet(("0", "1"))


def import_teacher(
    source: str | Path,
    out: str | Path,
    seconds: float | None = None,
    data: str | Path | None = None,
) -> dict:
    """Convert ``source`` into ``out``; the window is ``seconds`` or ``data``'s longest clip.

    With ``data`` the classifier head is sized for its labels (still untrained).
    """
    if seconds is not None and data is not None:
        raise TkdError("give at most one of --seconds and --data")
    labels = PLACEHOLDER_LABELS
    if data is not None:
        manifest = Manifest.load(data)
        labels, seconds = manifest.labels, max(clip.duration for clip in manifest)
    with torch.random.fork_rng():  # the same source always gives the same folder (and key)
        torch.manual_seed(0)
        model, extractor, origin = load_source(source, labels, seconds)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    extractor.save_pretrained(out)
    write_json(out / PROVENANCE_FILE, origin)
    return {**origin, "out": str(out), "parameters": sum(p.numel() for p in model.parameters())}
