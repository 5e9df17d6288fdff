"""Reader for CTranslate2's ``model.bin`` (the faster-whisper format), without CTranslate2.

Pretrained Whisper weights installable offline ship in this format, and no Python library
reads it back into arrays. Layout (binary version 6, little-endian): uint32 version,
string spec name, uint32 spec revision, uint32 variable count, then per variable a string
name, uint8 rank, rank × uint32 dims, uint8 dtype, uint32 byte count and the raw data;
then uint32 alias count and (alias, target) string pairs. A string is a uint16 length
(NUL included) followed by the bytes and the NUL.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import CheckpointError

BINARY_VERSION = 6
DTYPES = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: np.dtype("<u2"),  # bfloat16: the upper half of a float32, widened in ``_bfloat16``
}


@dataclass
class CTranslate2Model:
    spec: str
    revision: int
    variables: dict[str, np.ndarray]  # aliases resolve to their target's array


class _Cursor:
    """Reads fields off the file's bytes; running out is a truncated file, said once."""

    def __init__(self, path: Path, data: bytes):
        self.path, self.data, self.offset = path, data, 0

    def take(self, size: int) -> bytes:
        if self.offset + size > len(self.data):
            raise CheckpointError(
                self.path, f"truncated CTranslate2 model (ends at byte {len(self.data)})"
            )
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def unpack(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        raw = self.take(self.unpack("H"))
        if not raw.endswith(b"\0"):
            raise CheckpointError(self.path, f"malformed string at byte {self.offset}")
        return raw[:-1].decode("utf-8")


def _bfloat16(raw: np.ndarray) -> np.ndarray:
    return (raw.astype(np.uint32) << 16).view(np.float32)


def read_model_bin(path: str | Path) -> CTranslate2Model:
    """All variables of a CTranslate2 ``model.bin`` as numpy arrays (bfloat16 as float32)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CheckpointError(path, f"cannot be read ({error.strerror})") from None
    cursor = _Cursor(path, data)
    version = cursor.unpack("I")
    if version != BINARY_VERSION:
        raise CheckpointError(
            path,
            f"CTranslate2 binary version {version} is not supported (only {BINARY_VERSION})",
        )
    spec, revision = cursor.string(), cursor.unpack("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(cursor.unpack("I")):
        name = cursor.string()
        shape = tuple(cursor.unpack("I") for _ in range(cursor.unpack("B")))
        dtype_id = cursor.unpack("B")
        if dtype_id not in DTYPES:
            raise CheckpointError(path, f"variable {name!r} has unknown dtype id {dtype_id}")
        size = cursor.unpack("I")
        dtype = DTYPES[dtype_id]
        if size != dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
            raise CheckpointError(
                path, f"variable {name!r}: {size} bytes do not fit shape {shape} of {dtype}"
            )
        array = np.frombuffer(cursor.take(size), dtype=dtype).reshape(shape)
        variables[name] = _bfloat16(array) if dtype_id == 5 else array
    for _ in range(cursor.unpack("I")):
        alias, target = cursor.string(), cursor.string()
        if target not in variables:
            raise CheckpointError(path, f"alias {alias!r} points to missing {target!r}")
        variables[alias] = variables[target]
    return CTranslate2Model(spec, revision, variables)
