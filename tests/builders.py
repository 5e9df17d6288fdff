"""Builders shared across the test packages: dataset folders over existing audio, and
teacher caches rewritten from another one (fixtures themselves live in conftest.py)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.cache import CacheIndex, TeacherCache, read_shard_attrs, read_shard_ids, write_shard


def write_dataset(root: Path, clips: list[dict], classes: list[str]) -> Path:
    """A prepared dataset folder from manifest lines (``id, audio, labels, split, duration``)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "labels.json").write_text(json.dumps({"classes": classes, "multi_label": False}))
    (root / "manifest.jsonl").write_text("".join(json.dumps(clip) + "\n" for clip in clips))
    return root


def manifest_lines(data: Path) -> list[dict]:
    """A dataset's manifest lines with audio paths made absolute, to re-use its audio."""
    lines = [json.loads(x) for x in (data / "manifest.jsonl").read_text().splitlines()]
    for line in lines:
        line["audio"] = str(data / line["audio"])
    return lines


def copy_dataset(data: Path, root: Path, lines: list[dict] | None = None, classes=None) -> Path:
    """Another dataset folder over ``data``'s audio (not copied), optionally edited."""
    labels = json.loads((data / "labels.json").read_text())
    return write_dataset(
        root, manifest_lines(data) if lines is None else lines, classes or labels["classes"]
    )


Rewrite = Callable[[TeacherCache, list[str]], tuple[np.ndarray, np.ndarray]]


def rewrite_cache(source: Path, out: Path, vectors: Rewrite, settings: dict | None = None) -> Path:
    """A copy of the ``source`` cache whose (rollout, attention) arrays come from
    ``vectors(source, ids)`` shard by shard, written through the real shard writer."""
    shutil.copytree(source, out)
    index = CacheIndex.load(out)
    with TeacherCache(source) as reader:
        for position, info in enumerate(index.shards):
            path = out / info.name
            ids = read_shard_ids(path)
            rollout, attention = vectors(reader, ids)
            logits = np.stack([reader.logits(i) for i in ids])
            attrs = {**read_shard_attrs(path), **(settings or {})}
            index.shards[position] = write_shard(path, ids, rollout, attention, logits, None, attrs)
    index.key, index.settings = out.name, {**index.settings, **(settings or {})}
    index.save(out)
    return out
