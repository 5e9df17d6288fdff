"""`tkd data <source>`: turn a dataset on disk (or the embedded generator) into a manifest."""

from __future__ import annotations

from pipeline.data.manifest import Manifest
from pipeline.data.recipes.esc50 import prepare_esc50
from pipeline.data.recipes.folder import prepare_folder
from pipeline.data.recipes.fsd50k import prepare_fsd50k
from pipeline.data.recipes.noisy_digits import prepare_noisy_digits
from pipeline.data.recipes.speech_commands import prepare_speech_commands
from pipeline.data.recipes.synth import prepare_synth

PREPARERS = {
    "synth": prepare_synth,
    "noisy-digits": prepare_noisy_digits,
    "speech-commands": prepare_speech_commands,
    "fsd50k": prepare_fsd50k,
    "esc50": prepare_esc50,
    "folder": prepare_folder,
}


def prepare_dataset(source: str, **options) -> Manifest:
    """Run the preparer for ``source`` with its own keyword options."""
    if source not in PREPARERS:
        raise ValueError(f"unknown source {source!r}; choose one of {', '.join(PREPARERS)}")
    return PREPARERS[source](**options)
