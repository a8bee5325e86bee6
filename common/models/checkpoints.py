"""The one place that reads and writes model files and model bytes (``torch.load`` lives only here).

Two formats:

* **model bytes** (what the coordinator stores after every round and serves as a job's model): a 4-byte
  big-endian header length, a JSON header ``[[name, numpy dtype string, shape], ...]`` in state-dict order,
  then each array's C-order bytes. No pickle, no timestamps: the same model always gives the same
  bytes, so a SHA-256 of them names a model bit for bit. (The coordinator's round driver writes this
  format from Flower ``ArrayRecord``\\s; :func:`decode_tensors` reads it without Flower.)
* **a model file** (``medfed job results JOB --model out.pt``): a torch ``state_dict`` saved with
  ``torch.save`` and loaded back with ``torch.load(..., weights_only=True)``, which refuses anything but
  tensors and plain containers, so opening a file someone sent you cannot run code.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import orjson
import torch
from numpy.typing import NDArray

__all__ = ["decode_tensors", "encode_tensors", "load_state_dict", "save_state_dict", "state_dict_from_bytes"]

_HEADER = struct.Struct(">I")


def encode_tensors(arrays: Mapping[str, NDArray[np.generic] | torch.Tensor]) -> bytes:
    """Model bytes of ``arrays`` (numpy arrays or CPU tensors), in the mapping's order."""
    header: list[list[object]] = []
    chunks: list[bytes] = []
    for name, array in arrays.items():
        values = np.ascontiguousarray(array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else array)
        header.append([name, values.dtype.str, list(values.shape)])
        chunks.append(values.tobytes())
    head = orjson.dumps(header)
    return _HEADER.pack(len(head)) + head + b"".join(chunks)


def decode_tensors(data: bytes) -> dict[str, NDArray[np.generic]]:
    """The arrays of model bytes, by name in their order; ``ValueError`` for bytes of another shape."""
    if len(data) < _HEADER.size:
        raise ValueError("model bytes too short")
    (length,) = _HEADER.unpack_from(data)
    offset = _HEADER.size + length
    try:
        header = orjson.loads(data[_HEADER.size : offset])
    except orjson.JSONDecodeError:
        raise ValueError("model bytes without a readable header") from None
    arrays: dict[str, NDArray[np.generic]] = {}
    for name, dtype, shape in header:
        kind = np.dtype(dtype)
        if kind.hasobject:
            raise ValueError("model bytes may hold numbers only")
        size = kind.itemsize * math.prod(shape)
        if offset + size > len(data):
            raise ValueError("model bytes shorter than their header says")
        arrays[str(name)] = np.frombuffer(data[offset : offset + size], dtype=kind).reshape(shape).copy()
        offset += size
    if offset != len(data):
        raise ValueError("model bytes longer than their header says")
    return arrays


def state_dict_from_bytes(data: bytes) -> dict[str, torch.Tensor]:
    """A torch state dict of model bytes."""
    return {name: torch.from_numpy(values) for name, values in decode_tensors(data).items()}


def save_state_dict(state_dict: Mapping[str, torch.Tensor], path: Path) -> None:
    """Write ``state_dict`` (tensors only) to ``path`` with ``torch.save``."""
    torch.save({name: tensor.detach().cpu() for name, tensor in state_dict.items()}, path)


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict saved by :func:`save_state_dict`, loaded with ``weights_only=True`` (tensors only)."""
    loaded = torch.load(path, map_location="cpu", weights_only=True)  # noqa: TID251 - the one allowed place
    if not isinstance(loaded, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise ValueError("not a state dict of named tensors")
    return loaded
