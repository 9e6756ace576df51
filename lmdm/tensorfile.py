"""Read and write weight files in the safetensors format, through the `safetensors` package.

The format's own implementation does the parsing (no pickle); this module only adds what every
caller here wants around it: one `TensorFileError` that names the file and says in words what is
wrong (truncated, not safetensors, a dtype that cannot be stored), and writes that never leave a
half file under the real name.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as _save_bytes

# safetensors' messages, said for a musician who only wanted to load a model
_PLAIN = {
    "header too small": "too short for a safetensors file",
    "invalid header length": "its header length does not fit in the file (truncated, or not safetensors)",
    "incomplete metadata": "the tensor data does not cover the file (truncated?)",
    "invalid JSON": "header is not valid JSON",
    "invalid header": "not a valid safetensors header",
}


class TensorFileError(ValueError):
    """The file is not a valid safetensors file, or does not fit what the caller expected."""


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write `tensors` (and string `metadata`) to `path`: to a temporary name first, then renamed."""
    path = Path(path)
    try:
        blob = _save_bytes({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=dict(metadata) if metadata else None)
    except (ValueError, TypeError, SafetensorError) as e:
        raise TensorFileError(f"{path}: cannot store these tensors ({e})") from e
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(blob)
    os.replace(tmp, path)  # a crash mid-write never leaves a half file under the real name


def _plain(e: Exception) -> str:
    text = str(e)
    return next((said for key, said in _PLAIN.items() if key in text), text)


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """-> (tensors, metadata). Raises TensorFileError naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise TensorFileError(f"cannot read {path}: no such file")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            tensors = {name: f.get_tensor(name).clone() for name in f.keys()}  # own memory, not the file's map
    except SafetensorError as e:
        raise TensorFileError(f"{path}: {_plain(e)} ({e})") from e
    except OSError as e:
        raise TensorFileError(f"cannot read {path}: {e}") from e
    return tensors, metadata
