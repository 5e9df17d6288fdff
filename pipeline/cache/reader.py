"""Reading a finished cache by clip id: what stage two, ``evaluate`` and reports use.

Opening checks that ``index.json`` and the shards agree (presence, sizes, ids, shapes)
without reading a vector, so a swapped or truncated shard is refused before training
starts rather than mid-epoch. HDF5 handles open lazily, one per shard per process, so a
reader built in the parent works in forked or spawned DataLoader workers. Attention
sources name teacher layers (``layer:K`` is teacher layer K), which the reader maps to
the rows a ``--layers`` subset stored. A cache with views (``--views K``) serves view v of
a clip (``record(clip_id, view=v)``; view 0 by default, the clip as it is) and the
parameters that rebuild its waveform (``params``), for stage two to replay.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from pipeline.cache.index import CacheIndex, ShardInfo
from pipeline.cache.shard import ARRAYS, examples, inspect_shard
from pipeline.data.augment import ViewParams, ViewSettings
from pipeline.errors import CacheError

if TYPE_CHECKING:
    import dask.array

SOURCE_FORMS = '"rollout", "rollout:K" or "layer:K" (K = 1-based layer)'


@dataclass(frozen=True)
class TeacherRecord:
    """One clip's cached teacher outputs, as float32 (rows in ``TeacherCache.layers`` order)."""

    rollout: np.ndarray  # [layers, R]: row k is the rollout through teacher layer layers[k]
    attention: np.ndarray  # [layers, R]: row k is the attention teacher layer layers[k] received
    logits: np.ndarray  # [C]


def parse_attention_source(source: str) -> tuple[str, int | None]:
    """``"rollout"`` -> ("rollout", None); ``"rollout:K"`` / ``"layer:K"`` -> (kind, K)."""
    kind, sep, number = source.partition(":")
    if kind == "rollout" and not sep:
        return "rollout", None
    if kind in ("rollout", "layer") and number.isdigit() and int(number) >= 1:
        return kind, int(number)
    raise ValueError(f"unknown attention source {source!r}; use {SOURCE_FORMS}")


class TeacherCache:
    """Reads a finished cache by clip id (see the module docstring for what opening checks)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.index = CacheIndex.load(self.directory)
        self.classes = list(self.index.classes)
        self.multi_label = self.index.multi_label
        self._paths = [self.directory / shard.name for shard in self.index.shards]
        self._where: dict[str, tuple[int, int]] = {}
        self.ids: list[str] = []
        self._shapes: dict[str, tuple[int, ...]] = {}
        if not self.index.shards:
            raise CacheError(self.directory, "index.json lists no shards")
        for number, (info, path) in enumerate(zip(self.index.shards, self._paths, strict=True)):
            ids, shapes = self._open_shard(info, path)
            if not self._shapes:
                self._shapes = shapes
            elif shapes != self._shapes:
                raise CacheError(
                    self.directory,
                    f"shards disagree: {info.name} holds {_describe(shapes)}, "
                    f"{self.index.shards[0].name} {_describe(self._shapes)}",
                )
            for row, clip_id in enumerate(ids):
                if clip_id in self._where:
                    other = self.index.shards[self._where[clip_id][0]].name
                    raise self._disagree(f"clip {clip_id!r} is in both {other} and {info.name}")
                self._where[clip_id] = (number, row)
            self.ids += ids
        self.num_layers, self.resolution = self._shapes["rollout"][-2:]
        self.views = self._shapes["rollout"][0] if len(self._shapes["rollout"]) == 3 else 1
        if self.views != self.index.settings.get("views", 1):
            raise self._disagree(
                f"settings.views {self.index.settings.get('views', 1)}, shards hold {self.views}"
            )
        self.layers = self._stored_layers()
        self._pid = os.getpid()
        self._handles: dict[int, h5py.File] = {}
        self._datasets: dict[tuple[int, str], h5py.Dataset] = {}

    def _disagree(self, reason: str) -> CacheError:
        return CacheError(self.directory, f"index.json disagrees with its shards: {reason}")

    def _open_shard(self, info: ShardInfo, path: Path) -> tuple[list[str], dict]:
        if not path.is_file():
            raise self._disagree(f"{info.name} is missing")
        size = path.stat().st_size
        if size != info.bytes:
            raise self._disagree(f"{info.name} has {size} bytes, index.json records {info.bytes}")
        try:
            with h5py.File(path, "r") as file:
                ids, problems = inspect_shard(file, classes=len(self.classes))
                shapes = {name: file[name].shape[1:] for name in ARRAYS if name in file}
        except OSError as error:
            raise CacheError(self.directory, f"{info.name} is damaged ({error})") from None
        if problems:
            raise CacheError(self.directory, f"{info.name}: {'; '.join(problems)}")
        if len(ids) != info.clips:
            raise self._disagree(f"{info.name} holds {len(ids)} clips, index.json {info.clips}")
        return ids, shapes

    def _stored_layers(self) -> list[int]:
        """The 1-based teacher layer of each stored row (``settings.layers``; all if unset)."""
        layers = self.index.settings.get("layers") or list(range(1, self.num_layers + 1))
        if len(layers) != self.num_layers or not all(isinstance(k, int) for k in layers):
            raise self._disagree(f"settings.layers {layers} for {self.num_layers} stored rows")
        return list(layers)

    def row_of(self, source: str) -> tuple[str, int]:
        """(array, stored row) that holds ``source``; a teacher layer not stored is refused."""
        kind, layer = parse_attention_source(source)
        name = "rollout" if kind == "rollout" else "attention"
        if layer is None:  # the full rollout: through the deepest stored layer
            return name, self.num_layers - 1
        if layer not in self.layers:
            raise CacheError(
                self.directory,
                f"attention source {source!r} asks for teacher layer {layer}, but the cache "
                f"holds layers {', '.join(map(str, self.layers))}: extract with --layers "
                f"including {layer}",
            )
        return name, self.layers.index(layer)

    # -- access -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, clip_id: object) -> bool:
        return clip_id in self._where

    @property
    def view_settings(self) -> ViewSettings | None:
        """The augmentations views 1.. were drawn with; None for a cache without views."""
        augment = self.index.settings.get("augment")
        return ViewSettings.from_json(augment) if augment is not None else None

    def record(self, clip_id: str, view: int = 0) -> TeacherRecord:
        shard, where = self._locate(clip_id, view)
        return TeacherRecord(
            rollout=self._read(shard, "rollout", where, clip_id),
            attention=self._read(shard, "attention", where, clip_id),
            logits=self._read(shard, "logits", where, clip_id),
        )

    def vector(self, clip_id: str, source: str = "rollout", view: int = 0) -> np.ndarray:
        """[R] target for one clip's view: the full rollout, the rollout through teacher
        layer K, or the attention teacher layer K received."""
        name, stored = self.row_of(source)
        shard, where = self._locate(clip_id, view)
        return self._read(shard, name, (*where, stored), clip_id)

    def targets(
        self, source: str, clip_ids: Sequence[str], views: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """``source``'s vectors [N, views, R] and the logits [N, views, C] of views
        0..views-1 of each clip, read one slice per shard (what stage two keeps in memory)."""
        name, stored = self.row_of(source)
        if views > self.views:
            raise CacheError(self.directory, self._views_advice(f"{views} views", views - 1))
        vectors = np.empty((len(clip_ids), views, self.resolution), np.float32)
        logits = np.empty((len(clip_ids), views, len(self.classes)), np.float32)
        wanted: dict[int, list[tuple[int, int, str]]] = {}
        for position, clip_id in enumerate(clip_ids):
            shard, row = self._shard_row(clip_id)
            wanted.setdefault(shard, []).append((position, row, clip_id))
        for shard, clips in wanted.items():
            positions, rows, _ = (np.array(column) for column in zip(*clips, strict=True))
            picked = (slice(None),) if self.views == 1 else (slice(None), slice(0, views))
            try:
                block = self._dataset(shard, name)[(*picked, stored)]
                scores = self._dataset(shard, "logits")[picked]
            except OSError:  # a damaged chunk: clip by clip, so the error names the clip
                for position, _, clip_id in clips:
                    for view in range(views):
                        vectors[position, view] = self.vector(clip_id, source, view)
                        logits[position, view] = self.logits(clip_id, view)
                continue
            if self.views == 1:  # no view axis stored: view 0 is the only one
                block, scores = block[:, None], scores[:, None]
            vectors[positions], logits[positions] = block[rows], scores[rows]
        return vectors, logits

    def logits(self, clip_id: str, view: int = 0) -> np.ndarray:
        shard, where = self._locate(clip_id, view)
        return self._read(shard, "logits", where, clip_id)

    def params(self, clip_id: str, view: int = 0) -> ViewParams:
        """How view ``view`` of the clip was made: ``views.view_source(manifest, params)``
        rebuilds the waveform the teacher heard. View 0 (or a cache without views): the
        clip as it is."""
        shard, where = self._locate(clip_id, view)
        if self.views == 1:
            return ViewParams(clip_id, 0)
        try:
            raw = self._dataset(shard, "params")[where]
            return ViewParams.from_json(json.loads(raw))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CacheError(
                self._paths[shard],
                f"cannot read the parameters of view {view} of clip {clip_id!r}, damaged? "
                f"({error})",
            ) from None

    def to_dask(self, name: str = "rollout") -> dask.array.Array:
        """All clips' ``name`` array, [N, ...] float32 in ``self.ids`` order ([N, K, ...] with
        views), one lazily read chunk per shard (for whole-cache statistics without loading
        it all)."""
        import dask
        import dask.array as da

        if name not in self._shapes:
            raise ValueError(f"no array {name!r} in this cache; it holds {', '.join(self._shapes)}")
        parts = [
            da.from_delayed(
                dask.delayed(_read_array, pure=True)(str(path), name),
                shape=(info.clips, *self._shapes[name]),
                dtype=np.float32,
            )
            for info, path in zip(self.index.shards, self._paths, strict=True)
        ]
        return da.concatenate(parts, axis=0)

    def check_matches(
        self, clip_ids: list[str], classes: list[str], data_fingerprint: str | None = None
    ) -> None:
        """Refuse a cache that does not fit the dataset: a silent partial join would train
        on the wrong targets or on fewer clips than asked.

        ``data_fingerprint`` (``Manifest.fingerprint()``) must equal the one recorded at
        extraction: same ids and classes over other or changed audio files are refused too.
        Any resolution fits: stage two resamples the vectors to each student's steps.
        """
        classes = list(classes)
        if classes != self.classes:
            raise CacheError(
                self.directory, f"classes differ: {_class_difference(self.classes, classes)}"
            )
        missing = [clip_id for clip_id in clip_ids if clip_id not in self._where]
        if missing:
            skipped = {entry.get("id") for entry in self.index.skipped}
            was_skipped = sum(clip_id in skipped for clip_id in missing)
            note = f"; {was_skipped} were skipped at extraction (see index.json)"
            raise CacheError(
                self.directory,
                f"{len(missing)} of the dataset's {len(clip_ids)} clips are not in the cache "
                f"(e.g. {examples(missing)}){note if was_skipped else ''}",
            )
        recorded = self.index.data.get("fingerprint")
        if data_fingerprint is not None and recorded != data_fingerprint:
            raise CacheError(
                self.directory,
                f"extracted from another dataset ({self.index.data.get('root')}) or from audio "
                "files since moved, replaced or changed (paths, sizes or mtimes differ): "
                "extract the teacher again for this dataset",
            )

    # -- handles ------------------------------------------------------------------------
    def _shard_row(self, clip_id: str) -> tuple[int, int]:
        try:
            return self._where[clip_id]
        except KeyError:
            raise CacheError(self.directory, f"clip {clip_id!r} is not in this cache") from None

    def _views_advice(self, what: str, view: int) -> str:
        return (
            f"{what} asked for, the cache holds {self.views} view(s) per clip: "
            f"extract with --views {view + 1} or more"
        )

    def _locate(self, clip_id: str, view: int = 0) -> tuple[int, tuple[int, ...]]:
        """(shard, index of the clip's view in that shard's arrays)."""
        shard, row = self._shard_row(clip_id)
        if not 0 <= view < self.views:
            raise CacheError(
                self.directory, self._views_advice(f"view {view} of clip {clip_id!r}", view)
            )
        return shard, (row,) if self.views == 1 else (row, view)

    def _read(self, shard: int, name: str, where: tuple[int, ...], clip_id: str) -> np.ndarray:
        try:
            return np.asarray(self._dataset(shard, name)[where], dtype=np.float32)
        except OSError as error:
            raise CacheError(
                self._paths[shard], f"cannot read {name!r} of clip {clip_id!r}, damaged? ({error})"
            ) from None

    def _dataset(self, shard: int, name: str) -> h5py.Dataset:
        """An open dataset, kept: re-opening one per read costs 3x the read (its chunk index
        and chunk cache start cold each time)."""
        if self._pid != os.getpid():  # forked: the parent's handles are not safe to share
            self._handles, self._datasets, self._pid = {}, {}, os.getpid()
        dataset = self._datasets.get((shard, name))
        if dataset is None:
            if shard not in self._handles:
                self._handles[shard] = h5py.File(self._paths[shard], "r")
            dataset = self._datasets[shard, name] = self._handles[shard][name]
        return dataset

    def close(self) -> None:
        if self._pid == os.getpid():
            for handle in self._handles.values():
                handle.close()
        self._handles, self._datasets = {}, {}

    def __enter__(self) -> TeacherCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"], state["_datasets"] = {}, {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()


def _read_array(path: str, name: str) -> np.ndarray:
    """One shard's whole array: a top-level function so dask can ship it to workers."""
    try:
        with h5py.File(path, "r") as file:
            return np.asarray(file[name][()], dtype=np.float32)
    except OSError as error:
        raise CacheError(path, f"cannot read {name!r}, damaged? ({error})") from None


def _describe(shapes: dict[str, tuple[int, ...]]) -> str:
    return ", ".join(f"{name} {list(shape)}" for name, shape in shapes.items())


def _class_difference(cache: list[str], dataset: list[str]) -> str:
    if len(cache) != len(dataset):
        return f"the cache has {len(cache)} classes, the dataset {len(dataset)}"
    position = next(i for i, (a, b) in enumerate(zip(cache, dataset, strict=True)) if a != b)
    return (
        f"class {position} is {cache[position]!r} in the cache, {dataset[position]!r} "
        "in the dataset (same names in another order count as different)"
    )
