"""Read and write the safetensors file format (no pickle, no extra dependency).

Layout: 8-byte little-endian header length N, N bytes of JSON header, then raw little-endian tensor
bytes. The header maps each name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into
the data part) and may hold "__metadata__": {str: str}. Files written here load with the
`safetensors` package and the other way round.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import torch

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
MAX_HEADER = 100_000_000


class TensorFileError(ValueError):
    """The file is not a valid safetensors file, or does not fit what the caller expected."""


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    header: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in DTYPE_NAMES:
            raise TensorFileError(f"{name}: dtype {t.dtype} cannot be stored")
        blob = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # pad so the data part starts 8-byte aligned
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    tmp.replace(path)  # a crash mid-write never leaves a half file under the real name


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """-> (tensors, metadata). Raises TensorFileError naming the file and the problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise TensorFileError(f"cannot read {path}: {e}") from e
    if len(raw) < 8:
        raise TensorFileError(f"{path}: {len(raw)} bytes is too short for a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > min(MAX_HEADER, len(raw) - 8):
        raise TensorFileError(f"{path}: header length {n} does not fit in a {len(raw)}-byte file (truncated or not safetensors)")
    try:
        header = json.loads(raw[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TensorFileError(f"{path}: header is not valid JSON ({e})") from e
    if not isinstance(header, dict):
        raise TensorFileError(f"{path}: header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    data = memoryview(raw)[8 + n :]
    tensors, spans = {}, []
    for name, entry in header.items():
        tensors[name] = _tensor(path, name, entry, data)
        spans.append(tuple(entry["data_offsets"]))
    covered = 0
    for begin, end in sorted(spans):
        if begin != covered:
            raise TensorFileError(f"{path}: tensor data overlaps or leaves a gap at byte {covered}")
        covered = end
    if covered != len(data):
        raise TensorFileError(f"{path}: data part is {len(data)} bytes but the header describes {covered} (truncated?)")
    return tensors, metadata


def _tensor(path: Path, name: str, entry: object, data: memoryview) -> torch.Tensor:
    try:
        dtype = DTYPES[entry["dtype"]]
        shape = [int(s) for s in entry["shape"]]
        begin, end = (int(o) for o in entry["data_offsets"])
    except (KeyError, TypeError, ValueError) as e:
        raise TensorFileError(f"{path}: bad header entry for {name!r}: {entry!r}") from e
    itemsize = torch.empty((), dtype=dtype).element_size()
    if end > len(data):
        raise TensorFileError(f"{path}: {name!r} needs data bytes up to {end} but there are {len(data)} (truncated?)")
    if any(s < 0 for s in shape) or not 0 <= begin <= end <= len(data) or end - begin != math.prod(shape) * itemsize:
        raise TensorFileError(f"{path}: {name!r} shape {shape} {entry['dtype']} does not match bytes [{begin}, {end}) of {len(data)}")
    if begin == end:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(data[begin:end]), dtype=torch.uint8).view(dtype).reshape(shape)
