"""One video's file in a cache: the safetensors format, encoded with sorted keys.

The safetensors library orders metadata at random; encoding it here, keys sorted, means the
same features always give the same bytes (a resumed or multi-process run writes the same file
as one uninterrupted run). Reading uses the library (``safe_open``: no pickle).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open

from video_eleatt.features.layout import CacheError

SAFETENSORS_DTYPES = {
    np.dtype("float16"): "F16",
    np.dtype("float32"): "F32",
    np.dtype("float64"): "F64",
    np.dtype("int64"): "I64",
}
STORAGE_DTYPES = ("float16", "float32")


def safetensors_parts(
    tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]
) -> list[bytes | np.ndarray]:
    """The safetensors encoding of ``tensors`` as parts: the header, then each array's bytes.

    The arrays are the callers' own memory (no copy when they are C-contiguous and
    little-endian, as extraction's are), so writing the parts one after the other costs no
    memory in proportion to the video's length. Keys are sorted (deterministic bytes).
    """
    header: dict[str, Any] = {"__metadata__": {key: str(metadata[key]) for key in sorted(metadata)}}
    arrays: list[np.ndarray] = []
    offset = 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        if array.dtype not in SAFETENSORS_DTYPES:
            raise CacheError(
                f"tensor {name!r} has dtype {array.dtype}; expected one of "
                f"{sorted(str(d) for d in SAFETENSORS_DTYPES)}"
            )
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        header[name] = {
            "dtype": SAFETENSORS_DTYPES[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + array.nbytes],
        }
        arrays.append(array.reshape(-1).view(np.uint8))  # (nbytes,): a flat view, no copy
        offset += array.nbytes
    header_bytes = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    header_bytes += b" " * (-len(header_bytes) % 8)
    return [struct.pack("<Q", len(header_bytes)) + header_bytes, *arrays]


def encode_safetensors(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    """Serialises arrays to the safetensors format with sorted keys (deterministic bytes).

    Readable by ``safetensors.safe_open`` / ``safetensors.torch.load_file``. Builds the whole
    file in memory; :func:`write_entry` writes :func:`safetensors_parts` instead.
    """
    return b"".join(bytes(part) for part in safetensors_parts(tensors, metadata))


def read_safetensors_header(path: str | Path) -> dict[str, Any]:
    """Reads and checks the header of a safetensors file without loading the tensors.

    Raises:
        CacheError: when the file is shorter than its header says or the header is not JSON.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise CacheError(f"{path} is truncated ({size} bytes): not a safetensors file")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > min(size - 8, 100_000_000):
            raise CacheError(f"{path} is truncated or corrupt: header of {header_len} bytes")
        try:
            header = json.loads(handle.read(header_len))
        except ValueError as err:
            raise CacheError(f"{path} has a corrupt header: {err}") from err
    data_end = max(
        (entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"),
        default=0,
    )
    if 8 + header_len + data_end != size:
        raise CacheError(
            f"{path} is truncated or corrupt: {size} bytes on disk, "
            f"{8 + header_len + data_end} expected from its header"
        )
    return header


def load_entry_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of one entry file (safe: safetensors, no pickle)."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    return tensors, metadata
