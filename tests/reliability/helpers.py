"""Small builders shared by the reliability tests (fixtures live in tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile

from pipeline.cache import TeacherCache
from tests.builders import copy_dataset, manifest_lines, write_dataset  # noqa: F401 (re-export)

ROOT = Path(__file__).resolve().parents[2]
RATE = 16_000


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, samples, rate, subtype=subtype)
    return path


def tone(seconds: float, rate: int = RATE, freq: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def records(directory: Path) -> dict[str, tuple[np.ndarray, ...]]:
    with TeacherCache(directory) as cache:
        return {
            clip_id: (cache.record(clip_id).rollout, cache.record(clip_id).attention)
            + (cache.logits(clip_id),)
            for clip_id in cache.ids
        }


def assert_same_records(a: Path, b: Path) -> None:
    first, second = records(a), records(b)
    assert sorted(first) == sorted(second)
    for clip_id, arrays in first.items():
        for x, y in zip(arrays, second[clip_id], strict=True):
            np.testing.assert_allclose(x, y, atol=2e-3)


def python(script: str) -> subprocess.Popen:
    """Start ``python -c script`` in the repository, its output captured."""
    return subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "TQDM_DISABLE": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(child: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    """Wait for a child; returns (returncode, stdout, stderr); -9 when it was SIGKILLed."""
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()  # never leave a child behind
        child.communicate()
        raise
    return child.returncode, stdout, stderr
