"""On-device export: the bare student behind its feature front end, as one TorchScript or
ONNX graph (waveform [1, samples] in, logits [1, classes] out), optionally with dynamic
int8 weights. Running a written file and checking it against the PyTorch checkpoint it
came from is :mod:`pipeline.student.deployed`.

What is exported is what :func:`pipeline.student.checkpoint.load_student` returns: the original
architecture only. The auxiliary attention head lives in a separate file that is never
read here, and no loss code is part of any student's ``forward``.

- TorchScript: the front end is traced (the input length is fixed; the feature kind is
  resolved in Python) and the student scripted, so its loops stay loops.
- ONNX: ``torch.onnx.export(dynamo=True)``, opset 18, weights inside the one file. The
  legacy TorchScript-based exporter (``dynamo=False``) cannot take the front end: its
  STFT does not support complex outputs.
- Dynamic int8 touches the student's dense and recurrent weights only, never the front
  end (its filterbank input spans ~100 dB: 8 bits would flatten the quiet bands).
  TorchScript quantizes ``Linear``, ``LSTM`` and ``GRU``; onnxruntime has no integer GRU,
  so ONNX int8 quantizes dense layers and LSTMs and leaves a GRU in float.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pipeline.files import replacing
from pipeline.student.architectures import StudentModel
from pipeline.student.checkpoint import StudentCheckpoint
from pipeline.student.features import FrontEnd

FORMATS = ("torchscript", "onnx")
SUFFIXES = {"torchscript": ".pt", "onnx": ".onnx"}
QUANTIZATIONS = ("dynamic",)
ONNX_OPSET = 18  # the first with STFT is 17; 18 is what most mobile runtimes load
INPUT_NAME = "waveform"
OUTPUT_NAME = "logits"
METADATA_KEY = "tkd"  # the deployment info, also stored inside each exported file


class DeployableStudent(nn.Module):
    """Front end + bare student: waveform [batch, samples] -> logits [batch, classes]."""

    def __init__(self, front_end: nn.Module, student: nn.Module):
        super().__init__()
        self.features = front_end
        self.student = student

    def forward(self, waveform: Tensor) -> Tensor:
        return self.student(self.features(waveform))


def deployable(model: StudentModel, checkpoint: StudentCheckpoint) -> DeployableStudent:
    """The checkpoint's student behind its own front end, in eval mode."""
    return DeployableStudent(FrontEnd(checkpoint.features), model).eval()


def example_waveform(samples: int, seed: int = 0) -> Tensor:
    """A fixed noise clip [1, samples] to trace, export and time with."""
    generator = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(1, samples, generator=generator)


def deployment_info(checkpoint: StudentCheckpoint) -> dict[str, Any]:
    """What an on-device engineer needs to feed the model and read its output."""
    features = checkpoint.features
    return {
        "student": checkpoint.student,
        "student_options": checkpoint.student_options,
        "classes": checkpoint.classes,
        "multi_label": checkpoint.multi_label,
        "input": {
            "name": INPUT_NAME,
            "shape": [1, checkpoint.samples],
            "dtype": "float32",
            "sample_rate": features.sample_rate,
            "seconds": checkpoint.samples / features.sample_rate,
            "preparation": "mono in [-1, 1] at sample_rate; zero-padded at the end or "
            "cropped at the end to exactly shape[1] samples",
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": [1, len(checkpoint.classes)],
            "scores": "sigmoid per class" if checkpoint.multi_label else "softmax over classes",
        },
        "front_end": {"in_graph": True, "frames": features.frames(checkpoint.samples)}
        | features.to_json(),
    }


# -- export -----------------------------------------------------------------------------
def export_model(
    module: DeployableStudent,
    path: str | Path,
    fmt: str,
    samples: int,
    quantize: str | None = None,
    info: dict[str, Any] | None = None,
    float_onnx: str | Path | None = None,
) -> Path:
    """Write ``module`` as one ``fmt`` graph for [1, samples] waveforms; ``info`` (JSON)
    is stored inside the file. ONNX files are checked with ``onnx.checker``; ONNX int8 is
    made from ``float_onnx`` (this function's float ONNX of ``module``) when given."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {FORMATS}")
    if quantize not in (None, *QUANTIZATIONS):
        raise ValueError(f"unknown quantization {quantize!r}; use one of {QUANTIZATIONS}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as temporary:  # a half-written model is never left in place
        _write_model(module, temporary, fmt, samples, quantize, info, float_onnx)
    return path


def _write_model(
    module: DeployableStudent,
    path: Path,
    fmt: str,
    samples: int,
    quantize: str | None,
    info: dict[str, Any] | None,
    float_onnx: str | Path | None,
) -> None:
    example = example_waveform(samples)
    metadata = json.dumps(info or {})
    if fmt == "torchscript":
        source = _quantize_torch(module) if quantize else module
        with quiet_torchscript():
            torch.jit.save(
                _script(source, example), str(path), _extra_files={METADATA_KEY: metadata}
            )
    elif not quantize:
        _export_onnx(module, example, path)
        _finish_onnx(path, metadata)
    elif float_onnx is not None:
        _quantize_onnx(Path(float_onnx), path)
        _finish_onnx(path, metadata)
    else:
        with _scratch_file(path, ".float.onnx") as scratch:
            export_model(module, scratch, fmt, samples, None, info)
            _quantize_onnx(scratch, path)
        _finish_onnx(path, metadata)


@contextlib.contextmanager
def quiet_torchscript() -> Iterator[None]:
    """torch 2.11 marks ``torch.jit`` deprecated (for ``torch.export``); it still works and
    is what many device runtimes load."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit", DeprecationWarning)
        yield


def _script(module: DeployableStudent, example: Tensor) -> torch.jit.ScriptModule:
    with quiet_torchscript():
        front_end = torch.jit.trace(module.features, example)
        return torch.jit.script(DeployableStudent(front_end, module.student).eval())


def _quantize_torch(module: DeployableStudent) -> DeployableStudent:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.ao moves to torchao
        from torch.ao.quantization import quantize_dynamic

        student = quantize_dynamic(
            copy.deepcopy(module.student), {nn.Linear, nn.LSTM, nn.GRU}, dtype=torch.qint8
        )
    return DeployableStudent(module.features, student).eval()


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The dynamo exporter warns about optional packages and export internals."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _export_onnx(module: DeployableStudent, example: Tensor, path: Path) -> None:
    with _quiet_exporter():
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=True,
            external_data=False,
            opset_version=ONNX_OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            verbose=False,
        )


def _finish_onnx(path: Path, metadata: str) -> None:
    """Store ``metadata`` in the file, drop the exporter's per-node debug records (module
    paths, source lines: a third of an unrolled LSTM-P's bytes), and check the model."""
    import onnx

    model = onnx.load(str(path))
    for node in model.graph.node:
        del node.metadata_props[:]
    for value in (*model.graph.value_info, *model.graph.input, *model.graph.output):
        del value.metadata_props[:]
    for entry in [p for p in model.metadata_props if p.key == METADATA_KEY]:
        model.metadata_props.remove(entry)
    model.metadata_props.add(key=METADATA_KEY, value=metadata)
    onnx.save(model, str(path))
    onnx.checker.check_model(str(path), full_check=True)


@contextlib.contextmanager
def _scratch_file(beside: Path, suffix: str) -> Iterator[Path]:
    scratch = beside.with_name(f".{beside.stem}{suffix}")
    try:
        yield scratch
    finally:
        scratch.unlink(missing_ok=True)


class _DropRecord(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def _quantize_onnx(source: Path, path: Path) -> None:
    """onnxruntime's dynamic int8 on the student's dense and LSTM weights.

    Its integer ops take ``MatMul`` but not ``Gemm`` (which the exporter makes of every
    2-D ``nn.Linear``), so those are first rewritten as MatMul + Add; the front end's
    MatMuls (filterbank, DCT) are excluded.
    """
    import onnx
    import onnxscript.optimizer
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(source))
    # the integer LSTM needs its weights as constants, not stacked per direction in-graph
    unlimited = 1 << 40
    model = onnxscript.optimizer.optimize(
        model, input_size_limit=unlimited, output_size_limit=unlimited
    )
    _gemm_as_matmul(model.graph)
    # it suggests its optional pre-processing (shape inference) through the root logger
    advice = _DropRecord("Please consider to run pre-processing")
    logging.getLogger().addFilter(advice)
    try:
        quantize_dynamic(
            model,
            str(path),
            op_types_to_quantize=["MatMul", "LSTM"],
            nodes_to_exclude=front_end_nodes(model.graph),
            weight_type=QuantType.QInt8,
        )
    finally:
        logging.getLogger().removeFilter(advice)


def front_end_nodes(graph) -> list[str]:
    """Names of the ONNX nodes that read a front-end buffer (``DeployableStudent.features``:
    window, filterbank, DCT), hence every front-end node that has weights to quantize."""
    return [
        node.name for node in graph.node if any(name.startswith("features.") for name in node.input)
    ]


def _gemm_as_matmul(graph) -> None:
    """Rewrite ``Gemm(A, B[, C])`` with a constant B (alpha = beta = 1, no transA) as
    ``MatMul(A, B') [+ C]``, B' stored transposed as needed; other Gemms stay."""
    from onnx import helper, numpy_helper

    constants = {tensor.name: tensor for tensor in graph.initializer}
    added: dict[str, str] = {}
    nodes = []
    for node in graph.node:
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        plain = (
            attributes.get("alpha", 1.0) == 1.0
            and attributes.get("beta", 1.0) == 1.0
            and not attributes.get("transA", 0)
        )
        if node.op_type != "Gemm" or not plain or node.input[1] not in constants:
            nodes.append(node)
            continue
        weight = node.input[1]
        if attributes.get("transB", 0):
            if weight not in added:
                added[weight] = f"{weight}.transposed"
                matrix = numpy_helper.to_array(constants[weight]).T
                graph.initializer.append(
                    numpy_helper.from_array(np.ascontiguousarray(matrix), added[weight])
                )
            weight = added[weight]
        has_bias = len(node.input) > 2 and node.input[2]
        product = f"{node.output[0]}.product" if has_bias else node.output[0]
        nodes.append(helper.make_node("MatMul", [node.input[0], weight], [product], name=node.name))
        if has_bias:
            nodes.append(
                helper.make_node(
                    "Add", [product, node.input[2]], [node.output[0]], name=f"{node.name}.bias"
                )
            )
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    unused = [tensor for tensor in graph.initializer if tensor.name not in used]
    for tensor in unused:
        graph.initializer.remove(tensor)
