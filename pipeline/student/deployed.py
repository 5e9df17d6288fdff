"""Running and checking an exported file: :class:`ExportedModel` loads a TorchScript or
ONNX file for CPU inference, :func:`check_parity` holds a float export to the PyTorch
checkpoint's logits (within :data:`PARITY_ATOL` + :data:`PARITY_RTOL` x |logit|), and
:func:`latency` times one clip on one CPU thread, as it would run on a device.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pipeline.student.export import (
    FORMATS,
    INPUT_NAME,
    METADATA_KEY,
    OUTPUT_NAME,
    SUFFIXES,
    quiet_torchscript,
)
from pipeline.student.features import FrontEnd

# A float export must give the checkpoint's logits to |exported - pytorch| <= ATOL + RTOL *
# |pytorch| on every clip checked. Measured differences are ~1e-7 (float32 round-off
# from operator fusion and a different FFT); the bound leaves room for longer clips.
PARITY_ATOL = 1e-4
PARITY_RTOL = 1e-4


class ParityError(RuntimeError):
    """An exported float model whose outputs differ from the checkpoint's (a bug, not
    bad input)."""


# -- running exported files -----------------------------------------------------------
class ExportedModel:
    """An exported file loaded for CPU inference: waveform [1, samples] -> logits."""

    def __init__(self, path: str | Path, fmt: str | None = None, threads: int | None = None):
        self.path = Path(path)
        self.format = fmt or next(
            (f for f, suffix in SUFFIXES.items() if self.path.suffix == suffix), None
        )
        if self.format == "torchscript":
            with quiet_torchscript():
                self.module = torch.jit.load(str(self.path), map_location="cpu").eval()
        elif self.format == "onnx":
            import onnxruntime

            options = onnxruntime.SessionOptions()
            if threads is not None:
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = threads
            options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
            self.session = onnxruntime.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        else:
            raise ValueError(f"{self.path}: cannot tell the export format; pass one of {FORMATS}")

    @torch.inference_mode()
    def __call__(self, waveform: Tensor) -> Tensor:
        if self.format == "torchscript":
            return self.module(waveform)
        (logits,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: waveform.numpy()})
        return torch.from_numpy(logits)

    def metadata(self) -> dict[str, Any]:
        """The deployment info stored inside the file."""
        if self.format == "torchscript":
            files = {METADATA_KEY: ""}
            with quiet_torchscript():
                torch.jit.load(str(self.path), map_location="cpu", _extra_files=files)
            return json.loads(files[METADATA_KEY] or "{}")
        stored = self.session.get_modelmeta().custom_metadata_map
        return json.loads(stored.get(METADATA_KEY, "{}"))


# -- checking and measuring -------------------------------------------------------------
Scorer = Callable[[Tensor], Tensor]


@torch.inference_mode()
def compare(reference: Scorer, exported: Scorer, waves: list[Tensor]) -> dict[str, Any]:
    """Largest logit difference over ``waves`` (each [samples]), the largest share of the
    parity tolerance it uses, and how often the top class agrees."""
    worst, ratio, agree = 0.0, 0.0, 0
    with single_thread():
        pairs = [(reference(w[None]).float(), exported(w[None]).float()) for w in waves]
    for expected, actual in pairs:
        difference = (actual - expected).abs()
        bound = PARITY_ATOL + PARITY_RTOL * expected.abs()
        worst = max(worst, float(difference.max()))
        ratio = max(ratio, float((difference / bound).max()))
        agree += int(actual.argmax() == expected.argmax())
    return {
        "clips": len(waves),
        "max_abs_diff": worst,
        "tolerance_used": ratio,
        "top_class_agreement": agree / len(waves) if waves else None,
    }


def check_parity(reference: Scorer, exported: Scorer, waves: list[Tensor], name: str) -> dict:
    """:func:`compare`, raising :class:`ParityError` if any logit is out of tolerance."""
    result = compare(reference, exported, waves)
    if result["tolerance_used"] > 1.0:
        raise ParityError(
            f"{name}: exported logits differ from the checkpoint's by up to "
            f"{result['max_abs_diff']:.3g} (tolerance {PARITY_ATOL} + {PARITY_RTOL} x |logit|)"
        )
    return result | {"atol": PARITY_ATOL, "rtol": PARITY_RTOL}


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """torch on one CPU thread, as one clip runs on a device (and many times faster than
    a thread pool for these models on a busy machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@torch.inference_mode()
def latency(
    scorer: Scorer, example: Tensor, runs: int = 50, warmup: int = 10
) -> dict[str, float | int]:
    """Milliseconds per clip on one CPU thread: ``warmup`` untimed calls, then the median
    and 90th percentile of ``runs`` timed ones (ONNX sessions: open with ``threads=1``)."""
    with single_thread():
        for _ in range(warmup):
            scorer(example)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            scorer(example)
            times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {
        "median_ms": statistics.median(times),
        "p90_ms": times[min(len(times) - 1, int(0.9 * len(times)))],
    }


def front_end_macs(front_end: FrontEnd, num_frames: int) -> int:
    """The front end's matrix products per clip (mel filterbank, and DCT for MFCC), as
    :func:`pipeline.student.architectures.count_macs` counts a student's; the FFT is not counted."""
    matrices = ("mel_scale.fb", "dct_mat")
    return num_frames * sum(
        buffer.numel() for name, buffer in front_end.named_buffers() if name.endswith(matrices)
    )
