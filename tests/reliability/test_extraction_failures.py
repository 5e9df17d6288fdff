"""Stage one under failure: kill -9 at many points, two extractions of one key at once, a
full disk, and shards damaged after the fact. Nothing is lost that was finished, nothing
half-written is ever served, and damage is reported, not read as vectors."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import time
from pathlib import Path

import h5py
import pytest
from click.testing import CliRunner

from cli import main
from pipeline.cache import (
    TeacherCache,
    collect_garbage,
    read_shard_ids,
    verify_cache,
)
from pipeline.data.manifest import Manifest
from pipeline.errors import CacheError
from pipeline.teacher.extraction import ExtractionSettings
from stages.extract_teacher import extract_teacher, plan_shards
from stages.train_student import StudentTrainingOptions, train_student
from tests.reliability.helpers import assert_same_records, finish, python

SETTINGS = ExtractionSettings(resolution=40, batch_size=8)  # the teacher_cache fixture's
SHARD = 16


CHILD = """
import json, os, signal, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
import pipeline.cache as cache
import pipeline.files as files
from pipeline.teacher.extraction import ExtractionSettings
from pipeline.teacher.model import Teacher
from stages.extract_teacher import extract_teacher

def on_call(owner, name, count, action, after=False):
    real, calls = getattr(owner, name), [0]
    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == count and not after:
            action()
        result = real(*args, **kwargs)
        if calls[0] == count and after:
            action()
        return result
    setattr(owner, name, wrapper)

def die():
    os.kill(os.getpid(), signal.SIGKILL)

"""


def _child(data: Path, teacher: Path, root: Path, setup: str = ""):
    run = (
        f"result = extract_teacher({str(data)!r}, {str(teacher)!r}, {str(root)!r}, "
        f"ExtractionSettings(resolution=40, batch_size=8), shard_size={SHARD})\n"
        "print(json.dumps({'reused': result.summary['reused'], 'end': time.time()}))\n"
    )
    return python(CHILD + setup + "\n" + run)


def _assert_only_whole_shards(root: Path, manifest: Manifest) -> None:
    """Whatever a kill left: no index, and every shard under its final name is complete."""
    jobs = {job.name: list(job.ids) for job in plan_shards(manifest, SHARD)}
    assert not list(root.glob("*/index.json"))
    for shard in root.glob("*/shard-*.h5"):
        assert read_shard_ids(shard) == jobs[shard.name]


def test_kill_9_at_many_points_then_resume_equals_an_uninterrupted_run(
    synth_data, tiny_teacher, teacher_cache, tmp_path
):
    manifest = Manifest.load(synth_data)
    # From outside, at a random moment while shards are being written (the teacher slowed
    # to 0.1 s a batch, so that the moment falls inside the run)...
    slow = (
        "attend = Teacher.attend\n"
        "Teacher.attend = lambda self, waves: time.sleep(0.1) or attend(self, waves)\n"
    )
    child = _child(synth_data, tiny_teacher, tmp_path, slow)
    deadline = time.time() + 120
    while not list(tmp_path.glob("*/shard-*.h5")) and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(random.Random(11).uniform(0, 0.5))
    child.send_signal(signal.SIGKILL)
    assert finish(child)[0] == -signal.SIGKILL
    _assert_only_whole_shards(tmp_path, manifest)
    # ...then from inside, resuming each time: in the teacher mid-shard, with a shard's
    # temporary complete but not renamed, right after a rename, and with every shard
    # written but the index not.
    points = [
        'on_call(Teacher, "attend", 1, die)',
        'on_call(files, "fsync_path", 1, die)',
        'on_call(os, "replace", 1, die, after=True)',
        'on_call(cache.CacheIndex, "save", 1, die)',
    ]
    for point in points:
        code, _, stderr = finish(_child(synth_data, tiny_teacher, tmp_path, point))
        assert code == -signal.SIGKILL, stderr[-2000:]
        _assert_only_whole_shards(tmp_path, manifest)

    resumed = extract_teacher(synth_data, tiny_teacher, tmp_path, SETTINGS, shard_size=SHARD)
    assert resumed.summary["shards_written"] == 0  # all finished before the last kill: kept
    assert verify_cache(resumed.cache_dir) == []
    with TeacherCache(resumed.cache_dir) as cache:  # refuses an id in two shards
        assert sorted(cache.ids) == sorted(manifest.ids) and len(cache) == len(manifest)
    assert_same_records(resumed.cache_dir, teacher_cache)
    collect_garbage(tmp_path)  # temporaries of the killed writers
    names = {path.name for path in resumed.cache_dir.iterdir()}
    assert names == {"index.json", ".lock", *(f"shard-{i:05d}.h5" for i in range(5))}


def test_two_extractions_of_one_key_at_once_one_waits(
    synth_data, tiny_teacher, teacher_cache, tmp_path
):
    marker = tmp_path / "first-is-extracting"
    root = tmp_path / "cache"
    hold = (
        "def hold():\n"
        f"    Path({str(marker)!r}).touch()\n"
        "    time.sleep(3)\n"
        'on_call(Teacher, "attend", 1, hold)\n'
    )
    first = _child(synth_data, tiny_teacher, root, hold)
    deadline = time.time() + 120
    while not marker.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert marker.exists(), finish(first)[2][-2000:]
    second = _child(synth_data, tiny_teacher, root)  # starts while the first holds the lock
    (code_1, out_1, err_1), (code_2, out_2, err_2) = finish(first), finish(second)
    assert code_1 == 0 and code_2 == 0, (err_1[-2000:], err_2[-2000:])
    one, two = json.loads(out_1.splitlines()[-1]), json.loads(out_2.splitlines()[-1])
    assert not one["reused"] and two["reused"]  # the second did no teacher work of its own
    assert two["end"] >= one["end"]
    (directory,) = root.iterdir()
    assert verify_cache(directory) == []
    assert_same_records(directory, teacher_cache)


def _fail_fsync_of(monkeypatch: pytest.MonkeyPatch, name_part: str) -> list[str]:
    """Make flushing any file whose name contains ``name_part`` fail as a full disk does."""
    real, failed = os.fsync, []

    def fsync(descriptor: int) -> None:
        target = os.readlink(f"/proc/self/fd/{descriptor}")
        if name_part in Path(target).name:
            failed.append(target)
            raise OSError(errno.ENOSPC, "No space left on device")
        real(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    return failed


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name descriptors")
def test_disk_full_leaves_no_shard_or_index_and_the_rerun_completes(
    synth_data, tiny_teacher, teacher_cache, tmp_path, monkeypatch
):
    with monkeypatch.context() as patch:
        failed = _fail_fsync_of(patch, ".shard-00002.h5.")
        with pytest.raises(CacheError, match=r"shard-00002\.h5: could not write: .*No space left"):
            extract_teacher(synth_data, tiny_teacher, tmp_path, SETTINGS, shard_size=SHARD)
    assert failed
    (directory,) = tmp_path.iterdir()
    assert sorted(path.name for path in directory.iterdir()) == [
        ".lock",
        "shard-00000.h5",
        "shard-00001.h5",
    ]  # no temporary, no half shard under its final name, no index
    _assert_only_whole_shards(tmp_path, Manifest.load(synth_data))

    with monkeypatch.context() as patch:
        _fail_fsync_of(patch, ".index.json.")
        with pytest.raises(CacheError, match=r"index\.json: could not write .*No space left"):
            extract_teacher(synth_data, tiny_teacher, tmp_path, SETTINGS, shard_size=SHARD)
    assert not (directory / "index.json").exists() and not list(directory.glob(".*.tmp"))
    with pytest.raises(CacheError, match="index.json: missing"):
        TeacherCache(directory)

    resumed = extract_teacher(synth_data, tiny_teacher, tmp_path, SETTINGS, shard_size=SHARD)
    assert resumed.summary["shards_written"] == 0 and resumed.summary["shards_reused"] == 5
    assert verify_cache(directory) == []
    assert_same_records(directory, teacher_cache)


def _flip_bit(path: Path, dataset: str, row: int) -> None:
    """Flip one bit in the middle of the HDF5 chunk that holds ``row`` of ``dataset``."""
    with h5py.File(path, "r") as file:
        chunk = file[dataset].id.get_chunk_info_by_coord((row, 0, 0))
    with path.open("r+b") as raw:
        raw.seek(chunk.byte_offset + chunk.size // 2)
        byte = raw.read(1)[0]
        raw.seek(chunk.byte_offset + chunk.size // 2)
        raw.write(bytes([byte ^ 0x10]))


def test_damaged_shards_are_caught_by_cache_verify_and_the_reader(
    synth_data, tiny_teacher, teacher_cache, tmp_path
):
    runner = CliRunner()
    sound = runner.invoke(main, ["cache", "verify", str(teacher_cache)])
    assert sound.exit_code == 0 and sound.output.strip().endswith(": ok")

    truncated = shutil.copytree(teacher_cache, tmp_path / "truncated" / teacher_cache.name)
    shard = truncated / "shard-00001.h5"
    os.truncate(shard, shard.stat().st_size // 2)
    result = runner.invoke(main, ["cache", "verify", str(truncated)])
    assert result.exit_code == 1
    assert "shard-00001.h5: has" in result.output and "unreadable" in result.output
    with pytest.raises(CacheError, match="shard-00001.h5 has .* bytes, index.json records"):
        TeacherCache(truncated)
    repaired = extract_teacher(synth_data, tiny_teacher, truncated.parent, SETTINGS, SHARD)
    assert repaired.cache_dir == truncated and repaired.summary["shards_written"] == 1
    assert verify_cache(truncated) == []

    flipped = shutil.copytree(teacher_cache, tmp_path / "flipped" / teacher_cache.name)
    manifest = Manifest.load(synth_data)
    damaged_id = read_shard_ids(flipped / "shard-00000.h5")[2]
    assert manifest[damaged_id].split == "train"
    _flip_bit(flipped / "shard-00000.h5", "rollout", 2)
    result = runner.invoke(main, ["cache", "verify", str(flipped)])
    assert result.exit_code == 1
    assert "shard-00000.h5: sha256 differs from index.json" in result.output
    assert f"rollout: 1 clip(s) unreadable (checksum mismatch or damage): {damaged_id!r}" in (
        result.output
    )
    with TeacherCache(flipped) as cache:
        cache.record(read_shard_ids(flipped / "shard-00000.h5")[3])  # its neighbours still read
        with pytest.raises(CacheError, match=f"cannot read 'rollout' of clip '{damaged_id}'"):
            cache.record(damaged_id)
    options = StudentTrainingOptions(
        student="tc-resnet8", kd="attention", epochs=1, batch_size=8, device="cpu"
    )
    with pytest.raises(CacheError, match=f"clip '{damaged_id}'"):  # never trains on it
        train_student(synth_data, tmp_path / "run", flipped, options)
    assert not (tmp_path / "run" / "best.pt").exists()
    # Sizes and ids are intact, so only `cache verify` (or a read) notices: the repair is to
    # delete the shard it names and extract again, which redoes that shard alone.
    (flipped / "shard-00000.h5").unlink()
    repaired = extract_teacher(synth_data, tiny_teacher, flipped.parent, SETTINGS, SHARD)
    assert repaired.summary["shards_written"] == 1 and verify_cache(flipped) == []
    assert_same_records(flipped, teacher_cache)
