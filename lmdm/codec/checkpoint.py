"""Save/load a ConvCodec as a directory: codec.json (config) + codec.safetensors (weights + latent stats)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from lmdm.codec.conv import ConvCodec, ConvCodecConfig
from lmdm.config_fields import check_parameters, from_fields
from lmdm.tensorfile import TensorFileError, load_tensors, save_tensors

CONFIG_FILE = "codec.json"
WEIGHTS_FILE = "codec.safetensors"
KIND = "ConvCodec"
# what codec.json may ask for, field by field (checked before the codec is built; then its size is counted)
LIMITS: dict[str, tuple[float, float]] = {
    "sample_rate": (100, 384_000), "latent_dim": (1, 4096), "n_fft": (2, 4096), "synthesis_fft": (2, 4096),
    "frame_hop": (1, 4096), "stride": (1, 4096), "width": (1, 8192), "latent_width": (1, 8192),
    "frame_units": (0, 16), "latent_units": (0, 16), "kernel_size": (1, 255), "latent_noise": (0, 10),
}


def save_codec(codec: ConvCodec, directory: str | Path, info: dict | None = None, half: bool = False) -> Path:
    """Write codec.json + codec.safetensors under `directory`; `info` (JSON-able) goes into codec.json.

    `half`: weight matrices and kernels as float16 (vectors and latent statistics stay float32).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = codec.state_dict()
    if half:
        tensors = {k: v.half() if v.is_floating_point() and v.dim() >= 2 else v for k, v in tensors.items()}
    save_tensors(directory / WEIGHTS_FILE, tensors, metadata={"kind": KIND})
    doc = {"kind": KIND, "config": codec.config.to_dict(), "info": info or {}}
    (directory / CONFIG_FILE).write_text(json.dumps(doc, indent=2) + "\n")
    return directory


def weights_fingerprint(directory: str | Path) -> str:
    """The first 16 hex digits of the SHA-256 of a codec directory's weights file.

    Latents record it when they are encoded, and every checkpoint trained on them carries it, so
    a codec directory that was retrained or overwritten since is caught when the model is opened
    (lmdm.loading.open_codec), instead of decoding the latents into the wrong sound.
    """
    digest = hashlib.sha256()
    try:
        with open(Path(directory) / WEIGHTS_FILE, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError as e:
        raise TensorFileError(f"cannot read codec weights {Path(directory) / WEIGHTS_FILE}: {e}") from e
    return digest.hexdigest()[:16]


def load_codec(directory: str | Path) -> ConvCodec:
    """Read a directory written by save_codec -> ConvCodec in eval mode. Raises TensorFileError on a bad or mismatched file."""
    directory = Path(directory)
    file = directory / CONFIG_FILE
    try:
        doc = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TensorFileError(f"cannot read codec config {file}: {' '.join(str(e).split())}") from e
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise TensorFileError(f"{file}: kind is {doc.get('kind') if isinstance(doc, dict) else None!r:.60}, expected {KIND!r}")
    if "config" not in doc:
        raise TensorFileError(f"{file}: the codec config (\"config\") is missing")
    try:
        config = from_fields(ConvCodecConfig, doc["config"], LIMITS)
        with torch.device("meta"):  # counted, not allocated
            check_parameters(sum(t.numel() for t in ConvCodec(config).state_dict().values()), "the codec")
    except ValueError as e:
        raise TensorFileError(f"{file}: bad config: {e}") from e
    codec = ConvCodec(config)
    tensors, _ = load_tensors(directory / WEIGHTS_FILE)
    load_into(codec, tensors, directory / WEIGHTS_FILE)
    return codec.eval()


def load_into(module: nn.Module, tensors: dict[str, torch.Tensor], source: str | Path) -> None:
    """module.load_state_dict(tensors), but every missing, unexpected or wrongly shaped name is reported at once."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [
        f"{k}: file {tuple(tensors[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in tensors and tensors[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        problems = [f"missing {missing}"] * bool(missing) + [f"unexpected {unexpected}"] * bool(unexpected) + wrong
        raise TensorFileError(f"{source} does not match the model config: " + "; ".join(problems))
    module.load_state_dict(tensors)
