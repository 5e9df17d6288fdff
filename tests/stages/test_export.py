"""`tkd export` / `tkd profile` on tiny, untrained runs of every student (1 s clips)."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from pipeline.data.audio import fit_length, load_audio
from pipeline.data.manifest import Manifest
from pipeline.errors import CheckpointError
from pipeline.student.architectures import STUDENTS, DistillationModel, count_macs, count_parameters
from pipeline.student.checkpoint import AUXILIARY, StudentCheckpoint, load_student
from pipeline.student.deployed import PARITY_ATOL, PARITY_RTOL, ExportedModel, single_thread
from pipeline.student.export import deployable
from pipeline.student.features import FeatureConfig
from stages.export import default_export_path, export_run, profile_run

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

FORMATS = ["torchscript", "onnx"]
SAMPLES = 16_000


def _make_run(folder: Path, student: str, data: Path, seed: int = 0) -> Path:
    """A finished-looking run: random student (+ its auxiliary head), config.json."""
    labels = Manifest.load(data).labels
    kind = "mfcc" if student == "tc-resnet8" else "logmel"  # both front ends exported
    checkpoint = StudentCheckpoint(
        student, {}, list(labels.names), labels.multi_label, FeatureConfig(kind=kind), SAMPLES
    )
    torch.manual_seed(seed)
    model = checkpoint.build()
    wrapped = DistillationModel(model)
    with torch.no_grad():  # batch norm statistics away from (0, 1), so they must be carried
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.uniform_(-0.1, 0.1)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 2.0)
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint.save(folder / "best.pt", model, wrapped.auxiliary)
    (folder / "config.json").write_text(json.dumps({"data": str(data)}))
    return folder


@pytest.fixture(autouse=True)
def _one_thread():
    """Batch-1 inference on tiny models: a thread pool only adds waiting on a busy CPU."""
    with single_thread():
        yield


@pytest.fixture(scope="module")
def runs(tmp_path_factory, synth_data) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {name: _make_run(root / name, name, synth_data) for name in sorted(STUDENTS)}


@pytest.fixture(scope="module")
def exports(runs) -> dict[tuple[str, str], dict]:
    """Every student in both formats, to the runs' default export paths."""
    return {(name, fmt): export_run(run, fmt) for name, run in runs.items() for fmt in FORMATS}


def _real_clips(data: Path, count: int, sample_rate: int) -> list[torch.Tensor]:
    manifest = Manifest.load(data)
    clips = manifest.split("test")[-count:]  # not the clips export_run checked itself
    return [fit_length(load_audio(manifest.audio_path(c), sample_rate), SAMPLES) for c in clips]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("student", sorted(STUDENTS))
def test_export_matches_the_checkpoint_on_real_clips(student, fmt, runs, exports, synth_data):
    result = exports[student, fmt]
    path = Path(result["path"])
    assert path == default_export_path(runs[student], fmt) and path.is_file()
    if fmt == "onnx":
        onnx.checker.check_model(str(path), full_check=True)

    settings = json.loads(Path(result["settings"]).read_text())
    assert settings["classes"] == list(Manifest.load(synth_data).labels.names)
    assert settings["input"]["shape"] == [1, SAMPLES]
    assert settings["input"]["sample_rate"] == 16_000
    assert settings["front_end"]["in_graph"] is True
    assert settings["parity"]["on"] == "dataset clips" and settings["parity"]["clips"] == 8
    assert settings["parity"]["tolerance_used"] <= 1.0
    assert ExportedModel(path).metadata()["classes"] == settings["classes"]

    model, checkpoint = load_student(runs[student])
    reference = deployable(model, checkpoint)
    exported = ExportedModel(path)
    for wave in _real_clips(synth_data, 4, checkpoint.features.sample_rate):
        with torch.no_grad():
            expected = reference(wave[None])
        actual = exported(wave[None])
        assert actual.shape == (1, len(checkpoint.classes))
        assert expected.std() > 1e-3  # a live network, not constant logits
        torch.testing.assert_close(actual, expected, atol=PARITY_ATOL, rtol=PARITY_RTOL)


def _onnx_tensors(path: Path) -> tuple[list[np.ndarray], list[str]]:
    model = onnx.load(str(path))
    tensors = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer]
    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR:
                tensors.append(onnx.numpy_helper.to_array(attribute.t))
    names = [t.name for t in model.graph.initializer] + [n.name for n in model.graph.node]
    return tensors, names


def _torchscript_tensors(path: Path) -> tuple[list[np.ndarray], list[str]]:
    module = torch.jit.load(str(path))
    state = module.state_dict()
    tensors = [t.numpy() for t in state.values()]
    for node in module.inlined_graph.nodes():
        if node.kind() == "prim::Constant" and node.output().type().kind() == "TensorType":
            tensors.append(node.t("value").numpy())
    return tensors, list(state)


def _contains(tensors: list[np.ndarray], wanted: torch.Tensor) -> bool:
    """Whether ``wanted`` (or its transpose) is among ``tensors``, by value."""
    wanted = wanted.detach().numpy()
    candidates = [wanted, wanted.T] if wanted.ndim == 2 else [wanted]
    return any(
        t.size == c.size and t.dtype == c.dtype and np.allclose(t.reshape(c.shape), c)
        for t in tensors
        for c in candidates
    )


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("student", sorted(STUDENTS))
def test_export_lacks_the_training_only_head(student, fmt, runs, exports):
    path = Path(exports[student, fmt]["path"])
    model, _ = load_student(runs[student])
    tensors, names = (_onnx_tensors if fmt == "onnx" else _torchscript_tensors)(path)

    classifier = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert _contains(tensors, classifier.weight)  # the search finds what is there

    auxiliary_file = runs[student] / AUXILIARY
    assert auxiliary_file.is_file() != model.has_attention
    if auxiliary_file.is_file():
        auxiliary = torch.load(auxiliary_file, weights_only=True)
        assert {"project.weight", "project.bias", "query"} == set(auxiliary)
        for name, tensor in auxiliary.items():
            assert not _contains(tensors, tensor), f"auxiliary {name} is in the export"
    assert not any("auxiliary" in name for name in names)

    if fmt == "torchscript":
        student_keys = {k for k in names if not k.startswith("features.")}
        assert student_keys == {f"student.{k}" for k in model.state_dict()}
        output = torch.jit.load(str(path))(torch.zeros(1, SAMPLES))
        assert isinstance(output, torch.Tensor) and output.shape == (1, classifier.out_features)
    else:
        graph = onnx.load(str(path)).graph
        assert [i.name for i in graph.input] == ["waveform"]
        (output,) = graph.output
        assert output.name == "logits"
        assert [d.dim_value for d in output.type.tensor_type.shape.dim] == [
            1,
            classifier.out_features,
        ]


def test_dynamic_int8_accuracy_is_measured_and_profiled(runs, exports, synth_data):
    run = runs["att-rnn"]
    for fmt in FORMATS:
        result = export_run(run, fmt, quantize="dynamic")
        path = Path(result["path"])
        assert path == default_export_path(run, fmt, "dynamic")
        assert path.stat().st_size < 0.5 * exports["att-rnn", fmt]["bytes"]
        accuracy = result["accuracy"]
        assert accuracy["clips"] == len(Manifest.load(synth_data).split("test"))
        assert accuracy["metric"] == "accuracy"
        assert {"pytorch", "float", "int8", "int8_change"} <= set(accuracy)
        assert accuracy["pytorch"] == accuracy["float"]
        assert result["int8_parity"]["top_class_agreement"] >= 0.75
        assert json.loads(path.with_suffix(".json").read_text())["accuracy"] == accuracy

    graph = onnx.load(str(default_export_path(run, "onnx", "dynamic"))).graph
    ops = {node.op_type for node in graph.node}
    assert {"DynamicQuantizeLSTM", "MatMulInteger"} <= ops
    filterbank = next(t for t in graph.initializer if t.name.endswith("mel_scale.fb"))
    assert filterbank.data_type == onnx.TensorProto.FLOAT  # the front end stays float

    profile = profile_run(run, repeats=3, warmup=1)
    assert set(profile["models"]) == {
        "pytorch",
        "torchscript",
        "onnx",
        "torchscript-int8",
        "onnx-int8",
    }
    for name in ("torchscript-int8", "onnx-int8"):  # the exports above, not new ones
        assert profile["models"][name]["file"] is not None


def test_int8_needs_a_dataset_to_measure_on(tmp_path, synth_data):
    run = _make_run(tmp_path / "run", "tc-resnet8", synth_data)
    (run / "config.json").unlink()
    with pytest.raises(CheckpointError, match="pass --data"):
        export_run(run, "torchscript", quantize="dynamic")
    result = export_run(run, "torchscript", quantize="dynamic", data=synth_data, split="valid")
    assert result["accuracy"]["split"] == "valid"


@pytest.mark.parametrize("student", sorted(STUDENTS))
def test_profile_reports_size_compute_and_latency(student, runs, exports):
    run = runs[student]
    profile = profile_run(run, repeats=3, warmup=1, quantized=False)
    assert json.loads((run / "profile.json").read_text()) == json.loads(json.dumps(profile))
    model, checkpoint = load_student(run)
    frames = checkpoint.features.frames(SAMPLES)
    assert profile["frames"] == frames == 51
    assert profile["parameters"] == count_parameters(model)
    assert profile["macs"] == count_macs(model, frames, checkpoint.features.dim) > 0
    assert profile["front_end_macs"] > 0
    assert set(profile["models"]) == {"pytorch", "torchscript", "onnx"}
    for name, measured in profile["models"].items():
        assert measured["bytes"] > 0 and measured["median_ms"] > 0, name
    for fmt in FORMATS:  # the current exports were measured, not re-made
        assert profile["models"][fmt]["file"] == exports[student, fmt]["path"]
        assert profile["models"][fmt]["bytes"] == exports[student, fmt]["bytes"]


def test_profile_does_not_measure_a_stale_export(tmp_path, synth_data):
    run = _make_run(tmp_path / "run", "tc-resnet8", synth_data)
    export_run(run, "torchscript")
    _make_run(run, "tc-resnet8", synth_data, seed=1)  # retrained since
    profile = profile_run(run, repeats=2, warmup=1, quantized=False)
    assert profile["models"]["torchscript"]["file"] is None
    assert profile["models"]["torchscript"]["max_abs_diff"] <= PARITY_ATOL


def _foreign(folder: Path) -> Path:
    folder.mkdir()
    torch.save({"state_dict": {}}, folder / "best.pt")
    return folder


def _truncated(folder: Path, runs) -> Path:
    folder.mkdir()
    data = (runs["tc-resnet8"] / "best.pt").read_bytes()
    (folder / "best.pt").write_bytes(data[: len(data) // 2])
    return folder


@pytest.mark.parametrize("problem", ["missing", "not-a-run", "foreign", "truncated"])
def test_a_bad_run_folder_is_refused(problem, runs, tmp_path):
    folder = tmp_path / problem
    if problem == "not-a-run":
        folder.mkdir()
        (folder / "config.json").write_text("{}")
    elif problem == "foreign":
        _foreign(folder)
    elif problem == "truncated":
        _truncated(folder, runs)
    for call in (lambda: export_run(folder, "onnx"), lambda: profile_run(folder)):
        with pytest.raises(CheckpointError, match=problem) as error:
            call()
        assert "\n" not in str(error.value)
    assert not (folder / "export").exists() and not (folder / "profile.json").exists()
