"""Prepared datasets: one format for every source.

A prepared dataset is a folder with ``manifest.jsonl`` (one clip per line) and
``labels.json`` (class names in index order, and whether the task is multi-label).
Clip ids are unique and stable: they key every artifact downstream (teacher caches,
features, results), never row order.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import ManifestError
from pipeline.files import write_json, write_text

MANIFEST_FILE = "manifest.jsonl"
LABELS_FILE = "labels.json"
SPLITS = ("train", "valid", "test")
REQUIRED_FIELDS = ("id", "audio", "labels", "split", "duration")


@dataclass(frozen=True)
class Clip:
    """One line of a manifest.

    ``events`` holds (onset_s, offset_s) spans where the sound of interest is, when
    known; ``mix`` records how a generated clip was mixed so it can be re-mixed;
    ``speaker`` names the voice, when known, so splits can be checked speaker-disjoint.
    """

    id: str
    audio: str
    labels: tuple[str, ...]
    split: str
    duration: float
    events: tuple[tuple[float, float], ...] = ()
    mix: dict[str, Any] | None = field(default=None, compare=False)
    speaker: str | None = None

    def to_json(self) -> dict[str, Any]:
        line: dict[str, Any] = {
            "id": self.id,
            "audio": self.audio,
            "labels": list(self.labels),
            "split": self.split,
            "duration": round(self.duration, 6),
        }
        if len(self.events) == 1:
            line["event"] = list(self.events[0])
        elif self.events:
            line["events"] = [list(span) for span in self.events]
        if self.speaker is not None:
            line["speaker"] = self.speaker
        if self.mix is not None:
            line["mix"] = self.mix
        return line

    @classmethod
    def from_json(cls, line: dict[str, Any], where: str) -> Clip:
        missing = [key for key in REQUIRED_FIELDS if key not in line]
        if missing:
            raise ValueError(f"{where}: missing field(s) {', '.join(missing)}")
        if not _is_name(line["id"]) or not isinstance(line["audio"], str) or not line["audio"]:
            raise ValueError(f"{where}: 'id' and 'audio' must be non-empty strings")
        labels = line["labels"]
        if not isinstance(labels, list) or not labels or not all(map(_is_name, labels)):
            raise ValueError(f"{where}: 'labels' must be a non-empty list of class names")
        if not isinstance(line["split"], str) or line["split"] not in SPLITS:
            raise ValueError(f"{where}: split {line['split']!r} is not one of {', '.join(SPLITS)}")
        spans = line.get("events") or ([line["event"]] if line.get("event") else [])
        try:
            events = tuple((float(on), float(off)) for on, off in spans)
            duration = float(line["duration"])
        except (TypeError, ValueError) as error:
            raise ValueError(f"{where}: bad 'duration' or 'event' ({error})") from None
        speaker = line.get("speaker")
        if speaker is not None and not (isinstance(speaker, str) and speaker):
            raise ValueError(f"{where}: 'speaker' must be a non-empty string")
        if not math.isfinite(duration) or duration <= 0:
            raise ValueError(f"{where}: 'duration' must be a positive number of seconds")
        if any(
            not (math.isfinite(on) and math.isfinite(off) and 0 <= on < off) for on, off in events
        ):
            raise ValueError(
                f"{where}: each event must be [onset_s, offset_s] with 0 <= onset < offset"
            )
        return cls(
            id=str(line["id"]),
            audio=line["audio"],
            labels=tuple(str(label) for label in labels),
            split=line["split"],
            duration=duration,
            events=events,
            mix=line.get("mix"),
            speaker=speaker,
        )


@dataclass(frozen=True)
class LabelSet:
    """Class names in index order and the kind of task."""

    names: tuple[str, ...]
    multi_label: bool = False

    def index(self, name: str) -> int:
        return self.names.index(name)

    def __len__(self) -> int:
        return len(self.names)

    def to_json(self) -> dict[str, Any]:
        return {"classes": list(self.names), "multi_label": self.multi_label}


class Manifest:
    """A prepared dataset: its folder, its clips and its label set."""

    def __init__(self, root: str | Path, clips: Iterable[Clip], labels: LabelSet):
        self.root = Path(root)
        self.clips = list(clips)
        self.labels = labels
        self._by_id = {clip.id: clip for clip in self.clips}
        self._fingerprint: str | None = None
        self._check()

    def _check(self) -> None:
        where = self.root / MANIFEST_FILE
        if len(self._by_id) != len(self.clips):
            seen: set[str] = set()
            duplicate = next(c.id for c in self.clips if c.id in seen or seen.add(c.id))
            raise ManifestError(where, f"duplicate clip id {duplicate!r}")
        known = set(self.labels.names)
        for clip in self.clips:
            unknown = [label for label in clip.labels if label not in known]
            if unknown:
                raise ManifestError(where, f"clip {clip.id!r} has unknown label(s) {unknown}")
            if not self.labels.multi_label and len(clip.labels) != 1:
                raise ManifestError(
                    where, f"clip {clip.id!r} has {len(clip.labels)} labels in a single-label task"
                )

    # -- reading and writing -------------------------------------------------
    @classmethod
    def load(cls, root: str | Path) -> Manifest:
        root = Path(root)
        if not root.is_dir():
            raise ManifestError(root, "dataset folder does not exist")
        labels_path, manifest_path = root / LABELS_FILE, root / MANIFEST_FILE
        for path in (labels_path, manifest_path):
            if not path.is_file():
                raise ManifestError(path, "missing; prepare the dataset with `tkd data ...`")
        try:
            label_json = json.loads(labels_path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise ManifestError(labels_path, "is not UTF-8 text") from None
        except (OSError, ValueError, RecursionError) as error:
            raise ManifestError(labels_path, f"not a valid label list ({error})") from None
        label_json = label_json if isinstance(label_json, dict) else {}
        names, multi_label = label_json.get("classes"), label_json.get("multi_label", False)
        if not isinstance(names, list) or not isinstance(multi_label, bool):
            raise ManifestError(
                labels_path,
                'not a valid label list: expected {"classes": [names...], "multi_label": bool}',
            )
        if (
            not names
            or not all(isinstance(n, str) and n for n in names)
            or len(set(names)) != len(names)
        ):
            raise ManifestError(labels_path, "class names must be non-empty, unique strings")
        labels = LabelSet(tuple(names), multi_label)
        clips = []
        try:
            with manifest_path.open(encoding="utf-8") as lines:
                for number, text in enumerate(lines, start=1):
                    if text.strip():
                        clips.append(Clip.from_json(_parse_line(text, number), f"line {number}"))
        except UnicodeDecodeError:
            raise ManifestError(manifest_path, "is not UTF-8 text") from None
        except OSError as error:
            raise ManifestError(manifest_path, f"cannot be read ({error})") from None
        except ValueError as error:
            raise ManifestError(manifest_path, str(error)) from None
        if not clips:
            raise ManifestError(manifest_path, "holds no clips")
        return cls(root, clips, labels)

    def save(self) -> None:
        """Write atomically: a reader never sees half a manifest."""
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(self.root / LABELS_FILE, self.labels.to_json())
        body = "".join(json.dumps(clip.to_json()) + "\n" for clip in self.clips)
        write_text(self.root / MANIFEST_FILE, body)

    # -- access ----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self) -> Iterator[Clip]:
        return iter(self.clips)

    def __getitem__(self, clip_id: str) -> Clip:
        return self._by_id[clip_id]

    def __contains__(self, clip_id: object) -> bool:
        return clip_id in self._by_id

    @property
    def ids(self) -> list[str]:
        return [clip.id for clip in self.clips]

    def split(self, name: str) -> list[Clip]:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        return [clip for clip in self.clips if clip.split == name]

    def audio_path(self, clip: Clip) -> Path:
        path = Path(clip.audio)
        return path if path.is_absolute() else self.root / path

    def label_indices(self, clip: Clip) -> list[int]:
        return [self.labels.index(label) for label in clip.labels]

    def fingerprint(self) -> str:
        """Hash of what a teacher cache depends on: ids, audio paths and file stats.

        Size and mtime stand in for content, as make does: a replaced file changes it.
        Computed once per Manifest (a stage calls it several times and each call stats
        every audio file); a Manifest is a snapshot, so load a fresh one to see changes.
        """
        if self._fingerprint is None:
            self._fingerprint = self._hash_files()
        return self._fingerprint

    def _hash_files(self) -> str:
        digest = hashlib.sha256(json.dumps(self.labels.to_json()).encode())
        for clip in self.clips:
            path = self.audio_path(clip)
            try:
                stat = path.stat()
                stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
            except OSError:
                stamp = "missing"
            digest.update(f"{clip.id}\t{path.resolve()}\t{stamp}\n".encode())
        return digest.hexdigest()

    def summary(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "clips": len(self),
            "classes": len(self.labels),
            "multi_label": self.labels.multi_label,
            "splits": {name: len(self.split(name)) for name in SPLITS},
            "hours": round(sum(clip.duration for clip in self.clips) / 3600, 4),
        }


def _is_name(value: object) -> bool:
    """A clip id or class name: a non-empty string, or an integer (read as its digits)."""
    return (isinstance(value, str) and bool(value)) or (
        isinstance(value, int) and not isinstance(value, bool)
    )


def _parse_line(text: str, number: int) -> dict[str, Any]:
    try:
        line = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"line {number}: not JSON ({error.msg})") from None
    except RecursionError:
        raise ValueError(f"line {number}: not JSON (nested too deeply)") from None
    if not isinstance(line, dict):
        raise ValueError(f"line {number}: expected a JSON object")
    return line
