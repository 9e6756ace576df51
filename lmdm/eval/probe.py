"""The probe: a small 1-D conv net over log-mel + chroma frames -> a 128-d embedding + attribute heads.

    probe = load_probe()                        # the shipped one (lmdm/weights/probe), or load_probe(DIR)
    out = probe.embed_audio(audio)              # audio [T] at 16 kHz -> ProbeOutput per 5 s window
    out.embeddings                              # [windows, 128]: the space of the Fréchet distance
    out.style                                   # [windows, 9] probabilities, in probe.config.styles order

Net: features [B, 76, F] -> standardise -> conv k5 -> 4 x (strided conv k3 + conv k3, residual,
GroupNorm, GELU) -> mean and std over time -> linear to the embedding -> one linear head per
attribute (style: softmax, instruments: 29 sigmoids, tempo bucket: softmax).
The key head does not use the embedding: it matches the window's mean chroma against a few
learned 12-step profiles in all 12 rotations (Krumhansl-Schmuckler, learned), so it is
transposition-equivariant by construction and cannot memorise songs (a conv-net key head on a few
hundred songs learns to recognise the songs, not their keys, and drags the embedding with it).
A probe directory holds ``probe.json`` (config + training report), ``probe.safetensors`` (weights)
and ``reference.safetensors`` (embedding mean/covariance of the training corpus: the default
reference of `lmdm eval`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from torch import nn

from lmdm.corpus.styles import STYLE_NAMES
from lmdm.eval.features import N_MELS, probe_input, seconds_to_frames, spectral_features, windows
from lmdm.eval.frechet import Gaussian
from lmdm.eval.prompt import INSTRUMENT_NAMES, KEY_NAMES, TEMPO_EDGES
from lmdm.tensorfile import TensorFileError, load_tensors, save_tensors

DEFAULT_PROBE = Path(__file__).resolve().parent.parent / "weights" / "probe"
CONFIG_NAME, WEIGHTS_NAME, REFERENCE_NAME = "probe.json", "probe.safetensors", "reference.safetensors"
INPUT_CHANNELS = N_MELS + 12


class ProbeError(ValueError):
    """A probe directory is missing or does not hold a probe."""


@attrs.frozen
class ProbeConfig:
    channels: tuple[int, ...] = attrs.field(default=(128, 128, 160, 192, 256), converter=tuple)  # stem, then one per stage
    embed_dim: int = 128
    window_seconds: float = 5.0
    dropout: float = 0.2  # on the pooled features, while training
    key_profiles: int = 4  # learned pitch-class profiles of the key head (e.g. major, minor, modes)
    styles: tuple[str, ...] = attrs.field(default=STYLE_NAMES, converter=tuple)
    instruments: tuple[str, ...] = attrs.field(default=INSTRUMENT_NAMES, converter=tuple)
    tempo_edges: tuple[float, ...] = attrs.field(default=TEMPO_EDGES, converter=tuple)
    keys: tuple[str, ...] = attrs.field(default=KEY_NAMES, converter=tuple)

    @classmethod
    def tiny(cls) -> ProbeConfig:
        """For tests: ~40k parameters, 2 s windows."""
        return cls(channels=(32, 32, 48), embed_dim=32, window_seconds=2.0)

    @property
    def window_frames(self) -> int:
        return seconds_to_frames(self.window_seconds)

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProbeConfig:
        names = {f.name for f in attrs.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class Stage(nn.Module):
    """Halve the frame rate (strided conv), then a residual conv; GroupNorm + GELU after each."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.down = nn.Conv1d(c_in, c_out, 3, stride=2, padding=1)
        self.norm1 = nn.GroupNorm(8 if c_out % 8 == 0 else 1, c_out)
        self.conv = nn.Conv1d(c_out, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(8 if c_out % 8 == 0 else 1, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.gelu(self.norm1(self.down(x)))
        return x + nn.functional.gelu(self.norm2(self.conv(x)))


class ProbeNet(nn.Module):
    def __init__(self, config: ProbeConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        self.register_buffer("input_mean", torch.zeros(INPUT_CHANNELS))
        self.register_buffer("input_std", torch.ones(INPUT_CHANNELS))
        self.stem = nn.Conv1d(INPUT_CHANNELS, c[0], 5, padding=2)
        self.stages = nn.ModuleList(Stage(a, b) for a, b in zip(c[:-1], c[1:]))
        self.dropout = nn.Dropout(config.dropout)
        self.embed = nn.Linear(2 * c[-1], config.embed_dim)
        self.style = nn.Linear(config.embed_dim, len(config.styles))
        self.instruments = nn.Linear(config.embed_dim, len(config.instruments))
        self.tempo = nn.Linear(config.embed_dim, len(config.tempo_edges) + 1)
        self.key_profiles = nn.Parameter(torch.zeros(config.key_profiles, 12))  # [P, 12], tonic first
        self.register_buffer("rotations", (torch.arange(12)[:, None] + torch.arange(12)[None, :]) % 12, persistent=False)

    def key_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Probe input [B, 76, F] -> tonic logits [B, 12]: logit[t] = logsumexp over profiles p of
        sum_j chroma[(t + j) % 12] * profile[p, j], on the window's mean chroma scaled to sum 1."""
        chroma = x[:, N_MELS:].mean(dim=2)  # [B, 12]
        chroma = chroma / chroma.sum(dim=1, keepdim=True).clamp_min(1e-6)
        rolled = chroma[:, self.rotations]  # [B, 12 tonics, 12 steps]
        return torch.logsumexp(torch.einsum("btj,pj->btp", rolled, self.key_profiles) * 12.0, dim=2)

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        """Probe input [B, 76, F] -> embedding [B, embed_dim]."""
        x = (x - self.input_mean[:, None]) / self.input_std[:, None]
        x = nn.functional.gelu(self.stem(x))
        for stage in self.stages:
            x = stage(x)
        pooled = torch.cat([x.mean(dim=2), x.std(dim=2, correction=0)], dim=1)  # [B, 2C]
        return self.embed(self.dropout(pooled))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Probe input [B, 76, F] -> (embedding [B, D], logits: style [B, S], instruments [B, I], tempo [B, 8], key [B, 12])."""
        e = self.embedding(x)
        return e, {"style": self.style(e), "instruments": self.instruments(e), "tempo": self.tempo(e), "key": self.key_logits(x)}


@attrs.frozen(eq=False)
class ProbeOutput:
    """The probe's view of one signal, per window (window i covers [starts[i], starts[i] + seconds[i]) s)."""

    starts: np.ndarray  # [W] seconds
    seconds: np.ndarray  # [W]
    embeddings: np.ndarray  # [W, D] float64
    style: np.ndarray  # [W, S] probabilities
    instruments: np.ndarray  # [W, I] independent probabilities
    tempo: np.ndarray  # [W, 8] probabilities over tempo buckets
    key: np.ndarray  # [W, 12] probabilities over tonics


class Probe:
    """A trained ProbeNet with its reference statistics; everything runs without gradients."""

    def __init__(self, net: ProbeNet, reference: Gaussian | None = None, info: dict[str, Any] | None = None, path: Path | None = None) -> None:
        self.net = net.eval()
        self.config = net.config
        self.reference = reference
        self.info = info or {}
        self.path = path

    @torch.no_grad()
    def run(self, x: torch.Tensor, batch: int = 32) -> dict[str, torch.Tensor]:
        """Probe input [B, 76, F] -> {"embedding": [B, D], head: probabilities}."""
        parts: dict[str, list[torch.Tensor]] = {}
        for i in range(0, len(x), batch):
            e, logits = self.net(x[i : i + batch])
            out = {"embedding": e, "instruments": torch.sigmoid(logits.pop("instruments"))}
            out.update({k: torch.softmax(v, dim=1) for k, v in logits.items()})
            for k, v in out.items():
                parts.setdefault(k, []).append(v)
        return {k: torch.cat(v) for k, v in parts.items()}

    def embed_audio(self, audio: np.ndarray, sample_rate: int = 16000) -> ProbeOutput:
        """Mono audio [T] at 16 kHz -> the probe's outputs on each non-overlapping window
        (a signal shorter than a window is one short window)."""
        if sample_rate != 16000:
            raise ValueError(f"the probe takes 16 kHz audio, got {sample_rate} Hz (resample first)")
        mel, chroma = spectral_features(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None])
        x = probe_input(mel, chroma)[0]  # [76, frames]
        spans = windows(x.shape[1], self.config.window_frames)
        if spans[0][1] - spans[0][0] == self.config.window_frames:
            out = self.run(torch.stack([x[:, a:b] for a, b in spans]))
        else:  # one short window
            out = self.run(x[None])
        frame = 1.0 / 50.0
        return ProbeOutput(
            starts=np.array([a * frame for a, _ in spans]),
            seconds=np.array([(b - a) * frame for a, b in spans]),
            embeddings=out["embedding"].double().numpy(),
            style=out["style"].double().numpy(),
            instruments=out["instruments"].double().numpy(),
            tempo=out["tempo"].double().numpy(),
            key=out["key"].double().numpy(),
        )


def save_probe(path: str | Path, net: ProbeNet, reference: Gaussian | None, info: dict[str, Any]) -> None:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_tensors(path / WEIGHTS_NAME, {k: v.float() for k, v in net.state_dict().items()}, {"format": "lmdm-probe"})
    if reference is not None:
        save_tensors(
            path / REFERENCE_NAME,
            {"mean": torch.from_numpy(reference.mean).float(), "cov": torch.from_numpy(reference.cov).float()},
            {"count": str(reference.count), "source": str(info.get("reference", ""))},
        )
    (path / CONFIG_NAME).write_text(json.dumps({"config": net.config.to_json(), **info}, indent=2) + "\n")


def load_probe(path: str | Path | None = None) -> Probe:
    """A probe directory (default: the one shipped in lmdm/weights/probe) -> Probe. Raises ProbeError."""
    path = DEFAULT_PROBE if path is None else Path(path)
    if not (path / CONFIG_NAME).is_file() or not (path / WEIGHTS_NAME).is_file():
        raise ProbeError(f"{path} is not a probe directory (needs {CONFIG_NAME} and {WEIGHTS_NAME}; train one with python -m lmdm.eval.train_probe)")
    try:
        data = json.loads((path / CONFIG_NAME).read_text())
        net = ProbeNet(ProbeConfig.from_json(data["config"]))
        tensors, _ = load_tensors(path / WEIGHTS_NAME)
        net.load_state_dict(tensors)
        reference = None
        if (path / REFERENCE_NAME).is_file():
            ref, meta = load_tensors(path / REFERENCE_NAME)
            reference = Gaussian(ref["mean"].double().numpy(), ref["cov"].double().numpy(), int(meta.get("count", 0)))
    except (KeyError, TypeError, json.JSONDecodeError, TensorFileError, RuntimeError) as e:
        raise ProbeError(f"cannot load probe from {path}: {e}") from e
    info = {k: v for k, v in data.items() if k != "config"}
    return Probe(net, reference, info, path)


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
