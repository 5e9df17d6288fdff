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

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 2)))  # 1 beside other jobs

SHARED_DATA = Path(
    os.environ.get("TKD_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    """4 classes x (10 train, 4 valid, 4 test) one-second clips."""
    from pipeline.data.recipes.synth import SynthConfig, prepare_synth

    out = tmp_path_factory.mktemp("synth")
    prepare_synth(out, SynthConfig(num_classes=4, length=1.0, seed=3), clips_per_class=(10, 4, 4))
    return out


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory, synth_data) -> Path:
    """An untrained whisper-tiny teacher saved like a fine-tuned one."""
    from pipeline.data.manifest import Manifest
    from pipeline.teacher.model import build_teacher

    out = tmp_path_factory.mktemp("teacher")
    torch.manual_seed(0)
    model, extractor = build_teacher("whisper-tiny", Manifest.load(synth_data).labels, 1.0)
    model.save_pretrained(out)
    extractor.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def teacher_cache(tmp_path_factory, synth_data, tiny_teacher) -> Path:
    """Stage one's cache of the tiny teacher over the synthetic data (5 shards of 16)."""
    from pipeline.teacher.extraction import ExtractionSettings
    from stages.extract_teacher import extract_teacher

    root = tmp_path_factory.mktemp("cache")
    return extract_teacher(
        synth_data, tiny_teacher, root, ExtractionSettings(resolution=40), shard_size=16
    ).cache_dir


@pytest.fixture(scope="session")
def oracle_cache(tmp_path_factory, synth_data, teacher_cache) -> Path:
    """The tiny teacher's cache with its attention replaced by a teacher that attends
    exactly to each clip's event: a known temporal target to test transfer against."""
    import numpy as np

    from pipeline.data.manifest import Manifest
    from pipeline.temporal import event_mask
    from tests.builders import rewrite_cache

    manifest = Manifest.load(synth_data)

    def on_the_event(source, ids):
        vectors = []
        for clip_id in ids:
            clip = manifest[clip_id]
            mask = event_mask(source.resolution, clip.duration, clip.events).numpy()
            vectors.append(np.repeat((mask / mask.sum())[None], source.num_layers, 0))
        return np.stack(vectors), np.stack(vectors)

    out = tmp_path_factory.mktemp("oracle") / teacher_cache.name
    return rewrite_cache(teacher_cache, out, on_the_event)


@pytest.fixture(scope="session")
def views_data(tmp_path_factory, synth_data) -> Path:
    """12 of the synthetic clips (6 train, 3 valid, 3 test): several views each stay cheap."""
    from tests.builders import copy_dataset, manifest_lines

    lines = manifest_lines(synth_data)
    kept = [
        line
        for split, n in (("train", 6), ("valid", 3), ("test", 3))
        for line in [x for x in lines if x["split"] == split][:n]
    ]
    return copy_dataset(synth_data, tmp_path_factory.mktemp("views-data"), kept)


@pytest.fixture(scope="session")
def views_cache(tmp_path_factory, views_data, tiny_teacher) -> Path:
    """The tiny teacher's outputs on 3 views (shift, gain, mix) of every ``views_data`` clip."""
    from pipeline.data.augment import ViewSettings
    from pipeline.teacher.extraction import ExtractionSettings
    from stages.extract_teacher import extract_teacher

    settings = ExtractionSettings(
        resolution=40, views=3, view_seed=5, augment=ViewSettings(augment=("shift", "gain", "mix"))
    )
    root = tmp_path_factory.mktemp("views-cache")
    return extract_teacher(views_data, tiny_teacher, root, settings, shard_size=6).cache_dir
