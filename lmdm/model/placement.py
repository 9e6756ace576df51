"""Where a model runs: a torch device and the DiT's dtype, and the codec seen from the host.

`Placement` is the value (`placement("cuda")` checks and fills in the defaults); `place(model,
where)` moves an `LMDM` there in place, as `nn.Module.to` does:

- the DiT's weights go to the device in the placement's dtype (bfloat16 on CUDA by default,
  float32 elsewhere), except two small tables that stay float32 because rounding them moves every
  frame: RoPE's frequencies and the timestep's Fourier frequencies. The DiT casts its inputs to
  its own dtype and hands back float32 velocities (lmdm.model.dit), so the sampler's arithmetic
  and the clean history stay float32 on every device;
- the codec goes to the device in float32. `LiveSession` uses it through a `HostCodec`: whatever
  device its inputs are on, they are moved to the codec's, and its outputs come back to the host
  as float32 CPU tensors. Audio (and a player's latents) leave the device once per block;
- the text encoder stays on the CPU: a prompt is encoded once per change, and the stream moves
  its tokens to the device once per prompt (lmdm.stream).

On the CPU in float32 nothing moves: `place(model, Placement())` leaves a model as it was.
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any

import attrs
import torch
from torch import nn

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}
FLOAT32_TABLES = ("inv_freq", "timestep_features")  # DiT tensors that stay float32 in any dtype


@attrs.frozen
class Placement:
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32  # the DiT's weights and activations

    def __str__(self) -> str:
        return f"{self.device} {str(self.dtype).removeprefix('torch.')}"


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(f"unsupported model dtype {dtype}: choose float32, bfloat16 or float16")
        return dtype
    key = str(dtype).strip().lower().removeprefix("torch.")
    if key not in DTYPES:
        raise ValueError(f"unknown model dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    return DTYPES[key]


def parse_device(device: str | torch.device) -> torch.device:
    """A torch device this machine has, or one ValueError line saying why not."""
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown torch device {device!r}: use cpu, cuda, cuda:N or mps ({e})") from None
    if d.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"torch device {device!r}: CUDA is not available here (torch {torch.__version__}, "
                             f"built {'with' if torch.version.cuda else 'without'} CUDA): run on the cpu")
        index = 0 if d.index is None else d.index
        if index >= torch.cuda.device_count():
            raise ValueError(f"torch device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", index)
    if d.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError(f"torch device {device!r}: Apple's MPS is not available here; use cpu")
        return d
    if d.type != "cpu":
        raise ValueError(f"unsupported torch device {device!r}: use cpu, cuda, cuda:N or mps")
    return d


def placement(device: str | torch.device | None = None, dtype: str | torch.dtype | None = None) -> Placement:
    """The placement for `device` (default cpu) and `dtype` (default: bfloat16 on CUDA, float32
    elsewhere). float16 on the CPU works but is slow; bfloat16 is the CPU's reduced precision."""
    d = parse_device("cpu" if device is None else device)
    if dtype is None:
        return Placement(d, torch.bfloat16 if d.type == "cuda" else torch.float32)
    return Placement(d, parse_dtype(dtype))


def module_device(module: Any) -> torch.device:
    """Where a module's parameters (or buffers) live; the CPU for anything that is not a Module."""
    if isinstance(module, nn.Module):
        for t in itertools.chain(module.parameters(), module.buffers()):  # the first one: called on every push
            return t.device
    return torch.device("cpu")


def place_dit(dit: nn.Module, where: Placement) -> None:
    """Move a DiT to `where` in place; its FLOAT32_TABLES stay float32."""
    tables = {name: getattr(dit, name).detach().float() for name in FLOAT32_TABLES}
    dit.to(device=where.device, dtype=where.dtype)
    with torch.no_grad():
        for name, table in tables.items():
            current = getattr(dit, name)
            if isinstance(current, nn.Parameter):
                current.data = table.to(where.device)
            else:
                setattr(dit, name, table.to(where.device))


def place(model: Any, where: Placement) -> Any:
    """Move `model` (an LMDM) to `where` in place and return it (see the module docstring)."""
    place_dit(model.dit, where)
    if isinstance(model.codec, nn.Module):
        model.codec.to(device=where.device, dtype=torch.float32)
    return model


def model_placement(model: Any) -> Placement:
    """Where a model's DiT is now."""
    w = model.dit.project_in.weight
    return Placement(w.device, w.dtype)


class HostCodec:
    """A codec on its device, used from the host: inputs go to the codec's device (float32), outputs
    come back as float32 CPU tensors. Everything else (hop, rates, receptive fields...) is the
    wrapped codec's."""

    def __init__(self, codec: Any):
        self.inner = codec

    @property
    def device(self) -> torch.device:
        return module_device(self.inner)

    def __getattr__(self, name: str) -> Any:  # only called for what HostCodec itself lacks
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _in(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, torch.float32)

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        return _out(self.inner.encode(self._in(audio)))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return _out(self.inner.decode(self._in(latents)))

    def stream_encoder(self) -> "HostStream":
        return HostStream(self.inner.stream_encoder(), self._in)

    def stream_decoder(self) -> "HostStream":
        return HostStream(self.inner.stream_decoder(), self._in)


class HostStream:
    """A codec's stream encoder or decoder behind `HostCodec`'s boundary."""

    def __init__(self, inner: Any, to_device: Any):
        self.inner = inner
        self._in = to_device

    def __getattr__(self, name: str) -> Any:
        if name in ("inner", "_in"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def push(self, x: torch.Tensor) -> torch.Tensor:
        return _out(self.inner.push(self._in(x)))

    def flush(self) -> torch.Tensor:
        return _out(self.inner.flush())

    def reset(self) -> None:
        self.inner.reset()


def _out(x: torch.Tensor) -> torch.Tensor:
    return x.to("cpu", torch.float32)


def _device_arg(text: str) -> torch.device:
    try:
        return parse_device(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _dtype_arg(text: str) -> torch.dtype:
    try:
        return parse_dtype(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_placement_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The same ``--model-device`` / ``--model-dtype`` on every command that plays (``--device`` is
    the audio device there)."""
    parser.add_argument("--model-device", type=_device_arg, metavar="DEV",
                        help="torch device the model runs on: cpu (default), cuda, cuda:N, mps")
    parser.add_argument("--model-dtype", type=_dtype_arg, metavar="DTYPE",
                        help="the DiT's weights and activations: float32, bfloat16, float16 (default: bfloat16 on cuda, float32 on cpu)")
