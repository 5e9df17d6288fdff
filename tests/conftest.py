"""Shared fixtures: a tiny synthetic dataset and a tiny from-config teacher.

Everything is built here from code (never downloaded) and kept small enough that the
whole suite runs in minutes on a 2-core CPU.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: it reads this once

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)

SHARED_DATA = Path(os.environ.get("TKD_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    """4 classes x (10 train, 4 valid, 4 test) one-second clips."""
    from pipeline.recipes.synth import SynthConfig, prepare_synth

    out = tmp_path_factory.mktemp("synth")
    prepare_synth(out, SynthConfig(num_classes=4, length=1.0, seed=3), clips_per_class=(10, 4, 4))
    return out


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory, synth_data) -> Path:
    """An untrained whisper-tiny teacher saved like a fine-tuned one."""
    from pipeline.manifest import Manifest
    from pipeline.teacher import build_teacher

    out = tmp_path_factory.mktemp("teacher")
    torch.manual_seed(0)
    model, extractor = build_teacher("whisper-tiny", Manifest.load(synth_data).labels, 1.0)
    model.save_pretrained(out)
    extractor.save_pretrained(out)
    return out
