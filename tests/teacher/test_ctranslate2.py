import numpy as np
import pytest

from pipeline.errors import CheckpointError
from pipeline.teacher.ctranslate2 import read_model_bin
from tests.teacher.whisper_sources import write_model_bin

ARRAYS = {
    "encoder/weight": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
    "encoder/half": np.array([[0.5, -2.0], [1e-3, 65504.0]], dtype=np.float16),
    "encoder/int8": np.array([-128, 0, 127], dtype=np.int8),
    "encoder/int16": np.array(6, dtype=np.int16),
    "encoder/int32": np.array([[1 << 30]], dtype=np.int32),
}


def test_written_arrays_read_back_exactly(tmp_path):
    path = write_model_bin(
        tmp_path / "model.bin", ARRAYS, aliases={"decoder/weight": "encoder/weight"}
    )
    model = read_model_bin(path)
    assert (model.spec, model.revision) == ("WhisperSpec", 3)
    for name, array in ARRAYS.items():
        assert model.variables[name].dtype == array.dtype
        np.testing.assert_array_equal(model.variables[name], array)
    np.testing.assert_array_equal(model.variables["decoder/weight"], ARRAYS["encoder/weight"])


def test_bfloat16_widens_to_the_same_float32(tmp_path):
    values = np.array([1.5, -0.15625, 2.0**100], dtype=np.float32)
    upper = (values.view(np.uint32) >> 16).astype(np.uint16)
    path = write_model_bin(tmp_path / "model.bin", {"x": upper}, dtype_ids={"x": 5})
    np.testing.assert_array_equal(read_model_bin(path).variables["x"], values)


def test_truncated_file_is_refused_in_one_line(tmp_path):
    path = write_model_bin(tmp_path / "model.bin", ARRAYS)
    path.write_bytes(path.read_bytes()[:-9])
    with pytest.raises(CheckpointError, match="truncated CTranslate2 model") as error:
        read_model_bin(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_other_binary_versions_are_refused(tmp_path):
    path = write_model_bin(tmp_path / "model.bin", ARRAYS, version=5)
    with pytest.raises(CheckpointError, match="binary version 5 is not supported"):
        read_model_bin(path)


def test_alias_to_a_missing_variable_is_refused(tmp_path):
    path = write_model_bin(tmp_path / "model.bin", ARRAYS, aliases={"a": "nowhere"})
    with pytest.raises(CheckpointError, match="alias 'a' points to missing 'nowhere'"):
        read_model_bin(path)
