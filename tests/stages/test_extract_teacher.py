import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from pipeline.cache import TeacherCache, verify_cache
from pipeline.data.manifest import Manifest
from pipeline.errors import AudioError, CacheError
from pipeline.teacher.extraction import ExtractionSettings
from stages.extract_teacher import extract_teacher, plan_extraction
from tests.builders import copy_dataset, manifest_lines

ROOT = Path(__file__).resolve().parents[2]


def _records(directory: Path) -> dict[str, tuple]:
    with TeacherCache(directory) as cache:
        return {
            i: (cache.record(i).rollout, cache.record(i).attention, cache.logits(i))
            for i in cache.ids
        }


def _assert_same_records(a: Path, b: Path) -> None:
    first, second = _records(a), _records(b)
    assert sorted(first) == sorted(second)
    for clip_id, arrays in first.items():
        for x, y in zip(arrays, second[clip_id]):
            np.testing.assert_allclose(x, y, atol=2e-3)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, synth_data, tiny_teacher):
    root = tmp_path_factory.mktemp("cache")
    result = extract_teacher(
        synth_data, tiny_teacher, root, ExtractionSettings(resolution=40), shard_size=16
    )
    return result


def test_records_have_shapes_dtypes_and_sum_to_one(extracted, synth_data):
    manifest = Manifest.load(synth_data)
    with TeacherCache(extracted.cache_dir) as cache:
        assert sorted(cache.ids) == sorted(manifest.ids)
        record = cache.record(manifest.ids[0])
        assert record.rollout.shape == record.attention.shape == (2, 40)
        assert record.logits.shape == (4,)
        rows = cache.to_dask("rollout").compute()
        assert rows.shape == (len(manifest), 2, 40)
        np.testing.assert_allclose(rows.sum(-1), 1.0, atol=1e-3)
    with h5py.File(extracted.cache_dir / "shard-00000.h5") as shard:
        assert shard["rollout"].dtype == np.float16 and shard["logits"].dtype == np.float32
    assert verify_cache(extracted.cache_dir) == []
    summary = extracted.summary
    assert summary["clips"] == len(manifest) and summary["shards"] == 5
    assert len(summary["in_event_mass"]["rollout"]) == 2
    index = json.loads((extracted.cache_dir / "index.json").read_text())
    assert index["teacher"]["reduction"] == "mean-row"


def test_rerun_does_no_teacher_work(extracted, synth_data, tiny_teacher):
    again = extract_teacher(
        synth_data, tiny_teacher, extracted.cache_dir.parent, ExtractionSettings(resolution=40)
    )
    assert again.summary["reused"] and again.cache_dir == extracted.cache_dir


def test_key_changes_with_teacher_data_and_settings_only(synth_data, tiny_teacher, tmp_path):
    def key(data=synth_data, teacher=tiny_teacher, **settings):
        return plan_extraction(
            data, teacher, tmp_path, ExtractionSettings(**settings)
        ).directory.name

    base = key()
    assert key(batch_size=3, device="cpu") == base  # how it runs does not change what is stored
    assert key(resolution=50) != base
    assert key(layers=(1,)) != base
    assert key(store_maps=True) != base
    copied = tmp_path / "teacher"
    copied.mkdir()
    for f in tiny_teacher.iterdir():
        (copied / f.name).write_bytes(f.read_bytes())
    assert key(teacher=copied) == base  # same weights elsewhere: same cache
    config = json.loads((copied / "config.json").read_text())
    config["dropout"] = 0.5
    (copied / "config.json").write_text(json.dumps(config))
    assert key(teacher=copied) != base
    one_clip_fewer = copy_dataset(synth_data, tmp_path / "data", manifest_lines(synth_data)[:-1])
    assert key(data=one_clip_fewer) != base


def test_kill_during_extraction_then_resume_equals_uninterrupted_run(
    extracted, synth_data, tiny_teacher, tmp_path
):
    script = (
        "import sys; from pipeline.teacher.extraction import ExtractionSettings;"
        "from stages.extract_teacher import extract_teacher;"
        f"extract_teacher({str(synth_data)!r}, {str(tiny_teacher)!r}, {str(tmp_path)!r},"
        "ExtractionSettings(resolution=40, batch_size=2), shard_size=16)"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "TQDM_DISABLE": "1"}
    )
    deadline = time.time() + 120
    while (
        not list(tmp_path.glob("*/shard-00001.h5"))
        and time.time() < deadline
        and child.poll() is None
    ):
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    written = list(tmp_path.glob("*/shard-*.h5"))
    assert written and not list(tmp_path.glob("*/index.json")), "the kill should land mid-run"

    resumed = extract_teacher(
        synth_data, tiny_teacher, tmp_path, ExtractionSettings(resolution=40), shard_size=16
    )
    assert resumed.summary["shards_reused"] >= len(written) - 1
    assert verify_cache(resumed.cache_dir) == []
    _assert_same_records(resumed.cache_dir, extracted.cache_dir)


def test_dask_workers_produce_the_same_records(extracted, synth_data, tiny_teacher, tmp_path):
    result = extract_teacher(
        synth_data,
        tiny_teacher,
        tmp_path,
        ExtractionSettings(resolution=40),
        shard_size=16,
        workers=2,
    )
    _assert_same_records(result.cache_dir, extracted.cache_dir)


def _with_broken_clip(synth_data: Path, tmp_path: Path) -> tuple[Path, str]:
    lines = manifest_lines(synth_data)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00not really a wav file")
    lines[5]["audio"] = str(broken)
    return copy_dataset(synth_data, tmp_path / "data", lines), lines[5]["id"]


def test_unreadable_clip_stops_the_run_naming_id_and_path(synth_data, tiny_teacher, tmp_path):
    data, bad_id = _with_broken_clip(synth_data, tmp_path)
    with pytest.raises(AudioError, match=f"broken.wav: clip '{bad_id}'"):
        extract_teacher(data, tiny_teacher, tmp_path / "cache", shard_size=16)
    assert not list((tmp_path / "cache").glob("*/index.json"))


def test_skip_bad_lists_the_skipped_clip(synth_data, tiny_teacher, tmp_path):
    data, bad_id = _with_broken_clip(synth_data, tmp_path)
    result = extract_teacher(
        data, tiny_teacher, tmp_path / "cache", ExtractionSettings(skip_bad=True), shard_size=16
    )
    index = json.loads((result.cache_dir / "index.json").read_text())
    assert [s["id"] for s in index["skipped"]] == [bad_id]
    with TeacherCache(result.cache_dir) as cache:
        assert bad_id not in cache and len(cache) == len(Manifest.load(data)) - 1


def test_a_layer_subset_is_read_by_teacher_layer(synth_data, tmp_path):
    """``--layers 2,4`` stores two rows; ``layer:4`` must read teacher layer 4 (row 1), the
    same vector a full extraction stores for it, and a layer not stored is refused."""
    from pipeline.teacher.model import build_teacher

    config = tmp_path / "four-layers.json"
    config.write_text(
        json.dumps(
            {
                "family": "whisper",
                "num_mel_bins": 80,
                "d_model": 32,
                "encoder_layers": 4,
                "encoder_attention_heads": 2,
                "encoder_ffn_dim": 64,
            }
        )
    )
    teacher = tmp_path / "teacher"
    torch.manual_seed(0)
    model, extractor = build_teacher(str(config), Manifest.load(synth_data).labels, 1.0)
    model.save_pretrained(teacher)
    extractor.save_pretrained(teacher)
    every = extract_teacher(synth_data, teacher, tmp_path / "c", ExtractionSettings(resolution=20))
    some = extract_teacher(
        synth_data, teacher, tmp_path / "c", ExtractionSettings(resolution=20, layers=(2, 4))
    )
    clip_id = Manifest.load(synth_data).ids[0]
    with TeacherCache(every.cache_dir) as full, TeacherCache(some.cache_dir) as subset:
        assert subset.layers == [2, 4] and full.layers == [1, 2, 3, 4]
        for source in ("layer:4", "rollout:4", "layer:2", "rollout:2", "rollout"):
            np.testing.assert_array_equal(
                subset.vector(clip_id, source), full.vector(clip_id, source), err_msg=source
            )
        assert not np.array_equal(
            subset.vector(clip_id, "layer:4"), full.vector(clip_id, "layer:2")
        )
        with pytest.raises(CacheError, match=r"teacher layer 3, but the cache holds layers 2, 4"):
            subset.vector(clip_id, "layer:3")
