"""`tkd export` and `tkd profile`: ship a trained student as its original architecture
(front end + student, one graph), checked against its checkpoint, and measure what an
on-device engineer asks for (parameters, MACs, file size, single-thread CPU latency).

An export writes ``<file>`` and ``<file stem>.json`` beside it (class names, input and
feature settings, parity and accuracy measured); by default into ``<run>/export/``.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from pipeline.data.audio import fit_length, load_audio
from pipeline.data.manifest import Manifest
from pipeline.errors import TkdError
from pipeline.files import file_sha256, write_json
from pipeline.metrics import classification_metric
from pipeline.student.architectures import count_macs, count_parameters
from pipeline.student.checkpoint import BEST, StudentCheckpoint, load_student
from pipeline.student.deployed import (
    ExportedModel,
    check_parity,
    compare,
    front_end_macs,
    latency,
    single_thread,
)
from pipeline.student.export import (
    FORMATS,
    ONNX_OPSET,
    QUANTIZATIONS,
    SUFFIXES,
    DeployableStudent,
    deployable,
    deployment_info,
    example_waveform,
    export_model,
)
from pipeline.training import label_target
from stages.evaluate import run_manifest

EXPORT_FOLDER = "export"
PARITY_CLIPS = 8
PROFILE_FILE = "profile.json"

log = logging.getLogger(__name__)


def default_export_path(run: str | Path, fmt: str, quantize: str | None = None) -> Path:
    """``<run>/export/student[-int8].pt|.onnx``."""
    return Path(run) / EXPORT_FOLDER / f"student{'-int8' if quantize else ''}{SUFFIXES[fmt]}"


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def export_run(
    run: str | Path,
    fmt: str = "torchscript",
    out: str | Path | None = None,
    quantize: str | None = None,
    data: str | Path | None = None,
    split: str = "test",
) -> dict[str, Any]:
    """Export a run's best checkpoint as one ``fmt`` graph (waveform in, logits out).

    The float graph must reproduce the checkpoint's logits on real clips (the first few
    of ``split`` of ``data`` or the run's dataset; fixed noise clips if neither can be
    read) within the parity tolerance, or :class:`pipeline.student.deployed.ParityError` is raised
    and nothing is written: models are made in a temporary folder and moved to ``out``
    once checked. With ``quantize="dynamic"`` the file written is the int8 model, and the
    accuracy of the PyTorch, float and int8 models is measured on the whole split
    (``data`` or the run's dataset is then required); with ``data`` alone, that of the
    PyTorch and float ones. Refuses a folder that is not a finished student run with
    :class:`CheckpointError`.
    """
    if fmt not in FORMATS:
        raise TkdError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if quantize not in (None, *QUANTIZATIONS):
        raise TkdError(f"unknown quantization {quantize!r}; use one of {', '.join(QUANTIZATIONS)}")
    run = Path(run)
    model, checkpoint = load_student(run)
    checkpoint_path = run / BEST if run.is_dir() else run
    digest = file_sha256(checkpoint_path)
    out = Path(out) if out is not None else default_export_path(run, fmt, quantize)
    if out.suffix == ".json":
        raise TkdError(f"{out}: the export's JSON settings go beside it; name the model file")
    manifest = _dataset(run, data, checkpoint, required=quantize is not None)
    clips = manifest.split(split) if manifest is not None else []
    if manifest is not None and not clips:
        raise TkdError(f"{manifest.root}: the {split!r} split is empty")
    reference = deployable(model, checkpoint)
    waves = _parity_waves(manifest, clips[:PARITY_CLIPS], checkpoint)
    info = deployment_info(checkpoint)

    with tempfile.TemporaryDirectory(prefix="tkd-export-") as scratch:
        float_path = Path(scratch) / f"float{SUFFIXES[fmt]}"
        float_model, parity = _export_checked(reference, checkpoint, fmt, float_path, waves, info)
        written, result = float_path, {}
        scorers = {"pytorch": reference, "float": float_model}
        if quantize:
            written = Path(scratch) / f"int8{SUFFIXES[fmt]}"
            source = float_path if fmt == "onnx" else None  # torch quantizes the module
            export_model(reference, written, fmt, checkpoint.samples, quantize, info, source)
            scorers["int8"] = ExportedModel(written, fmt, threads=1)
            result["int8_parity"] = compare(reference, scorers["int8"], waves)
        if manifest is not None and (quantize or data is not None):
            result["accuracy"] = _accuracy(manifest, clips, checkpoint, scorers) | {
                "split": split,
                "data": str(manifest.root),
            }
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(written, out)  # only a checked model ever reaches ``out``

    summary = {
        "format": fmt,
        "quantize": quantize,
        "file": out.name,
        "bytes": out.stat().st_size,
        **info,
        "parity": parity | {"on": "dataset clips" if manifest is not None else "noise clips"},
        **result,
        "checkpoint": {"path": str(checkpoint_path), "sha256": digest},
        "exporter": _versions(fmt),
    }
    write_json(sidecar_path(out), summary)
    return {"path": str(out), "settings": str(sidecar_path(out)), **summary}


def _export_checked(
    reference: DeployableStudent,
    checkpoint: StudentCheckpoint,
    fmt: str,
    path: Path,
    waves: list[torch.Tensor],
    info: dict[str, Any],
) -> tuple[ExportedModel, dict[str, Any]]:
    """Export the float graph and hold it to parity (:class:`ParityError` if it fails)."""
    export_model(reference, path, fmt, checkpoint.samples, None, info)
    exported = ExportedModel(path, fmt, threads=1)
    return exported, check_parity(reference, exported, waves, checkpoint.student)


def _dataset(
    run: Path, data: str | Path | None, checkpoint: StudentCheckpoint, required: bool
) -> Manifest | None:
    """``data``, or the run's own dataset; ``None`` (with a warning) if that cannot be
    read and nothing needs it."""
    if data is not None or required:
        return run_manifest(run, data, checkpoint)
    try:
        return run_manifest(run, None, checkpoint)
    except TkdError as error:
        log.warning("parity checked on noise clips: %s", error)
        return None


def _clip_wave(manifest: Manifest, clip, checkpoint: StudentCheckpoint) -> torch.Tensor:
    wave = load_audio(manifest.audio_path(clip), checkpoint.features.sample_rate)
    return fit_length(wave, checkpoint.samples)


def _parity_waves(manifest: Manifest | None, clips: list, checkpoint: StudentCheckpoint):
    if manifest is None:
        return [example_waveform(checkpoint.samples, seed)[0] for seed in range(PARITY_CLIPS)]
    return [_clip_wave(manifest, clip, checkpoint) for clip in clips]


@torch.inference_mode()
def _accuracy(
    manifest: Manifest, clips: list, checkpoint: StudentCheckpoint, scorers: dict
) -> dict[str, Any]:
    """Each scorer's task metric over ``clips`` (one clip at a time, as on the device)."""
    scores: dict[str, list[torch.Tensor]] = {name: [] for name in scorers}
    targets = []
    with single_thread():
        for clip in clips:
            wave = _clip_wave(manifest, clip, checkpoint)[None]
            for name, scorer in scorers.items():
                scores[name].append(scorer(wave).float())
            targets.append(label_target(manifest, clip))
    target = torch.stack(targets)
    result: dict[str, Any] = {"clips": len(clips)}
    for name, rows in scores.items():
        metric, value = classification_metric(torch.cat(rows), target, checkpoint.multi_label)
        result["metric"] = metric
        result[name] = value
    if "int8" in result:
        result["int8_change"] = result["int8"] - result["float"]
    return result


def _versions(fmt: str) -> dict[str, Any]:
    versions: dict[str, Any] = {"torch": torch.__version__}
    if fmt == "onnx":
        import onnx
        import onnxruntime

        versions |= {
            "opset": ONNX_OPSET,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
        }
    return versions


# -- profile ------------------------------------------------------------------------------
def profile_run(
    run: str | Path, repeats: int = 50, warmup: int = 10, quantized: bool = True
) -> dict[str, Any]:
    """Parameters, MACs, file size and single-thread CPU latency for one clip, for the
    PyTorch model and each export (float, and int8 with ``quantized``): ``warmup`` untimed
    calls, then the median of ``repeats`` timed ones. Written to ``<run>/profile.json``.

    Exports already in ``<run>/export/`` are measured if they were made from the current
    checkpoint; missing or stale ones are exported to a temporary folder for the
    measurement (nothing but ``profile.json`` is written to the run).
    """
    run = Path(run)
    model, checkpoint = load_student(run)
    reference = deployable(model, checkpoint)
    frames = checkpoint.features.frames(checkpoint.samples)
    checkpoint_path = run / BEST if run.is_dir() else run
    digest = file_sha256(checkpoint_path)
    example = example_waveform(checkpoint.samples)
    info = deployment_info(checkpoint)
    waves = _parity_waves(None, [], checkpoint)

    models = {
        "pytorch": {
            "file": str(checkpoint_path),
            "bytes": checkpoint_path.stat().st_size,
            **latency(reference, example, repeats, warmup),
        }
    }
    variants = [(fmt, None) for fmt in FORMATS]
    if quantized:
        variants += [(fmt, "dynamic") for fmt in FORMATS]
    with tempfile.TemporaryDirectory(prefix="tkd-profile-") as scratch:
        for fmt, quantize in variants:
            name = fmt + ("-int8" if quantize else "")
            path = _current_export(run, fmt, quantize, digest)
            if path is None:
                path = Path(scratch) / f"{name}{SUFFIXES[fmt]}"
                if quantize:
                    export_model(reference, path, fmt, checkpoint.samples, quantize, info)
                else:
                    _export_checked(reference, checkpoint, fmt, path, waves, info)
            exported = ExportedModel(path, fmt, threads=1)
            models[name] = {
                "file": str(path) if path.parent != Path(scratch) else None,
                "bytes": path.stat().st_size,
                "max_abs_diff": compare(reference, exported, waves[:2])["max_abs_diff"],
                **latency(exported, example, repeats, warmup),
            }

    result = {
        "run": str(run),
        "student": checkpoint.student,
        "classes": len(checkpoint.classes),
        "clip_seconds": checkpoint.samples / checkpoint.features.sample_rate,
        "frames": frames,
        "features": checkpoint.features.kind,
        "parameters": count_parameters(model),
        "macs": count_macs(model, frames, checkpoint.features.dim),
        "front_end_macs": front_end_macs(reference.features, frames),
        "threads": 1,
        "warmup": warmup,
        "repeats": repeats,
        "models": models,
    }
    write_json(run / PROFILE_FILE, result)
    return result


def _current_export(run: Path, fmt: str, quantize: str | None, digest: str) -> Path | None:
    """The run's default export of this kind, if it was made from the current checkpoint."""
    path = default_export_path(run, fmt, quantize)
    settings = sidecar_path(path)
    if not (path.is_file() and settings.is_file()):
        return None
    try:
        made_from = json.loads(settings.read_text())["checkpoint"]["sha256"]
    except (ValueError, KeyError, TypeError):
        return None
    return path if made_from == digest else None


def profile_table(profile: dict[str, Any]) -> str:
    """A profile as a Markdown table: one row per model file."""
    head = (
        f"{profile['student']}: {profile['parameters']:,} parameters, "
        f"{profile['macs'] / 1e6:.2f} M MACs (+ {profile['front_end_macs'] / 1e6:.2f} M front "
        f"end) per {profile['clip_seconds']:g} s clip; median of {profile['repeats']} runs "
        "on 1 CPU thread"
    )
    rows = [
        "| model | file size (KB) | median (ms) | p90 (ms) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, measured in profile["models"].items():
        rows.append(
            f"| {name} | {measured['bytes'] / 1000:.0f} | {measured['median_ms']:.2f} "
            f"| {measured['p90_ms']:.2f} |"
        )
    return "\n".join([head, "", *rows])
