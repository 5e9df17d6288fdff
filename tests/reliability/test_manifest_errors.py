"""Malformed datasets: every problem is a ManifestError (or AudioError) naming the file and
the problem, raised before any work is done or anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.data.manifest import Manifest
from pipeline.errors import AudioError, ManifestError, TkdError
from stages.extract_teacher import extract_teacher
from stages.finetune_teacher import TeacherTrainingOptions, finetune_teacher
from stages.train_student import StudentTrainingOptions, train_student
from tests.reliability.helpers import copy_dataset, manifest_lines

GOOD = {"id": "a", "audio": "a.wav", "labels": ["dog"], "split": "train", "duration": 1.0}
LABELS = {"classes": ["dog", "cat"], "multi_label": False}


def _dataset(root: Path, lines: list, labels: object = LABELS) -> Path:
    """Write raw manifest lines (dicts become JSON, str and bytes go in as they are)."""
    root.mkdir(parents=True, exist_ok=True)
    raw = labels if isinstance(labels, bytes) else json.dumps(labels).encode()
    (root / "labels.json").write_bytes(raw)
    body = b"".join(
        (
            line
            if isinstance(line, bytes)
            else (json.dumps(line) if isinstance(line, dict) else line).encode()
        )
        + b"\n"
        for line in lines
    )
    (root / "manifest.jsonl").write_bytes(body)
    return root


def _with(**changes) -> dict:
    return {**GOOD, "id": "b", **changes}


def _without(key: str) -> dict:
    return {k: v for k, v in GOOD.items() if k != key}


# name: (manifest lines, labels.json content, file blamed, message)
CASES = {
    "duplicate ids": ([GOOD, GOOD], LABELS, "manifest", "duplicate clip id 'a'"),
    "missing field": ([GOOD, _without("split")], LABELS, "manifest", "line 2: missing field"),
    "unknown label": ([GOOD, _with(labels=["zebra"])], LABELS, "manifest", "unknown label"),
    "two labels, single-label task": (
        [_with(labels=["dog", "cat"])],
        LABELS,
        "manifest",
        "2 labels in a single-label task",
    ),
    "unknown split": ([_with(split="holdout")], LABELS, "manifest", "split 'holdout'"),
    "not JSON": ([GOOD, "{id: a"], LABELS, "manifest", "line 2: not JSON"),
    "not an object": (["[1, 2]"], LABELS, "manifest", "line 1: expected a JSON object"),
    "nested too deeply": (["[" * 100_000 + "]" * 100_000], LABELS, "manifest", "nested"),
    "non-UTF-8 manifest": ([GOOD, b"\xff\xfe caf\xe9"], LABELS, "manifest", "not UTF-8"),
    "non-UTF-8 labels": ([GOOD], b'{"classes": ["caf\xe9"]}', "labels", "not UTF-8"),
    "empty manifest": ([], LABELS, "manifest", "holds no clips"),
    "blank lines only": (["", "   "], LABELS, "manifest", "holds no clips"),
    "NaN duration": ([_with(duration=float("nan"))], LABELS, "manifest", "duration"),
    "negative duration": ([_with(duration=-1)], LABELS, "manifest", "duration"),
    "duration as text": ([_with(duration="long")], LABELS, "manifest", "duration"),
    "reversed event": ([_with(event=[0.5, 0.2])], LABELS, "manifest", "onset < offset"),
    "event of one number": ([_with(event=[0.5])], LABELS, "manifest", "event"),
    "null id": ([_with(id=None)], LABELS, "manifest", "'id' and 'audio'"),
    "labels as a string": ([_with(labels="dog")], LABELS, "manifest", "'labels' must be"),
    "classes as a string": ([GOOD], {"classes": "dog"}, "labels", "not a valid label list"),
    "classes missing": ([GOOD], {"names": ["dog"]}, "labels", "not a valid label list"),
    "multi_label not a bool": (
        [GOOD],
        {"classes": ["dog"], "multi_label": "no"},
        "labels",
        "not a valid label list",
    ),
    "duplicate classes": ([GOOD], {"classes": ["dog", "dog"]}, "labels", "unique"),
    "no classes": ([GOOD], {"classes": []}, "labels", "non-empty"),
    "labels.json not JSON": ([GOOD], b"classes: dog", "labels", "not a valid label list"),
}


@pytest.mark.parametrize("case", CASES)
def test_malformed_dataset_is_refused_naming_file_and_problem(case, tmp_path):
    lines, labels, blamed, message = CASES[case]
    root = _dataset(tmp_path / "data", lines, labels)
    with pytest.raises(ManifestError, match=message) as caught:
        Manifest.load(root)
    expected = root / ("manifest.jsonl" if blamed == "manifest" else "labels.json")
    assert caught.value.path == expected and str(caught.value).startswith(f"{expected}: ")


def test_missing_dataset_files_are_named(tmp_path):
    with pytest.raises(ManifestError, match="dataset folder does not exist"):
        Manifest.load(tmp_path / "nowhere")
    (tmp_path / "data").mkdir()
    with pytest.raises(ManifestError, match=r"labels\.json: missing"):
        Manifest.load(tmp_path / "data")


def test_missing_audio_fails_fast_naming_the_file(synth_data, tiny_teacher, tmp_path):
    """Manifest.load does not stat audio (evaluation needs only cached features), but stage
    one refuses before any teacher work and stage two before writing anything."""
    lines = manifest_lines(synth_data)
    lines[-1]["audio"] = str(tmp_path / "gone.wav")
    data = copy_dataset(synth_data, tmp_path / "data", lines)
    assert len(Manifest.load(data)) == len(lines)
    with pytest.raises(AudioError, match=rf"gone\.wav: clip '{lines[-1]['id']}': audio file does"):
        extract_teacher(data, tiny_teacher, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
    options = StudentTrainingOptions(student="tc-resnet8", epochs=1, device="cpu")
    with pytest.raises(AudioError, match=r"gone\.wav: audio file does not exist"):
        train_student(data, tmp_path / "run", None, options)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("split", ["train", "valid"])
def test_stages_refuse_an_empty_train_or_valid_split(split, synth_data, tmp_path):
    lines = [line for line in manifest_lines(synth_data) if line["split"] != split]
    data = copy_dataset(synth_data, tmp_path / "data", lines)
    options = StudentTrainingOptions(student="tc-resnet8", epochs=1, device="cpu")
    with pytest.raises(ManifestError, match=f"the '{split}' split is empty") as caught:
        train_student(data, tmp_path / "run", None, options)
    assert caught.value.path == data / "manifest.jsonl"
    with pytest.raises(TkdError, match=f"the '{split}' split is empty"):
        finetune_teacher(
            data, tmp_path / "teacher", config="whisper-tiny", options=TeacherTrainingOptions()
        )
    assert not (tmp_path / "run").exists() and not (tmp_path / "teacher").exists()
