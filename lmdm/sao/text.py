"""SAO's conditioning: prompt -> T5-base tokens, plus the `seconds_total` number, as one `Conditioning`.

    prompt --T5 tokenizer (pad/truncate to 64)--> T5EncoderModel --x attention mask--> tokens [64, 768]
    seconds_total --clamp to [0, 256], u = s / 256--> [u, sin(2 pi u w), cos(2 pi u w)] (w: 128 learned)
                  --Linear(257 -> 768)--> seconds [768]
    Conditioning(tokens = [T5 tokens ; seconds] [65, 768], pooled = seconds [768])

This is SAO's routing: cross-attention reads the 64 T5 tokens and the seconds token; the global
token reads the seconds vector (our DiT's `pooled` input). T5 is frozen and, as in SAO, not part of
the checkpoint: it is loaded from a local directory with `transformers` (the `lmdm[sao]` extra)
the first time a prompt is encoded.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from lmdm.checkpoint import CheckpointError
from lmdm.conditioning.text import Conditioning

T5_ENV = "LMDM_T5"  # a T5 directory to use instead of <model dir>/<t5 name>
T5_FILES = (("config.json",), ("model.safetensors", "pytorch_model.bin"), ("spiece.model", "tokenizer.json"))
DEFAULT_SECONDS = 12.0  # the LMDM demos' seconds_total


class T5Unavailable(CheckpointError):
    """T5 cannot be loaded: `transformers` is not installed, or its directory is missing or incomplete."""


class SecondsEmbedder(nn.Module):
    """stable-audio-tools' NumberConditioner + NumberEmbedder: a number -> one cond_dim vector."""

    def __init__(self, dim: int, features: int = 256, min_val: float = 0.0, max_val: float = 256.0):
        super().__init__()
        self.min_val, self.max_val = float(min_val), float(max_val)
        self.freqs = nn.Parameter(torch.randn(features // 2))
        self.proj = nn.Linear(features + 1, dim)

    def forward(self, seconds: torch.Tensor) -> torch.Tensor:
        """seconds [B] -> [B, dim]"""
        u = (seconds.float().clamp(self.min_val, self.max_val) - self.min_val) / (self.max_val - self.min_val)
        u = u.to(self.freqs.device)[:, None]  # [B, 1]
        f = 2 * math.pi * u * self.freqs[None, :]  # [B, F/2]
        return self.proj(torch.cat((u, f.sin(), f.cos()), dim=-1))


def missing_t5_files(directory: Path) -> list[str]:
    """The files a T5 directory lacks (each entry names the alternatives), [] if complete."""
    return [" or ".join(names) for names in T5_FILES if not any((directory / n).is_file() for n in names)]


def t5_directory(name: str, model_dirs: Sequence[Path], explicit: str | Path | None = None) -> Path:
    """Where T5 is: `explicit`, else $LMDM_T5, else the first <model dir>/<name> that exists (e.g. sao-small/t5-base).

    When none exists, the first candidate is returned: the error at the first prompt names it.
    """
    if explicit:
        return Path(explicit)
    if os.environ.get(T5_ENV):
        return Path(os.environ[T5_ENV])
    candidates = [Path(d) / name.split("/")[-1] for d in model_dirs] or [Path(name.split("/")[-1])]
    return next((c for c in candidates if c.is_dir()), candidates[0])


class T5Encoder:
    """A frozen Hugging Face T5 encoder: texts -> hidden states [B, max_length, d], zero on padding.

    Loaded on first use, from `directory` only (no download). `tokenizer` and `model` may be given
    directly (any objects with the Hugging Face call conventions): the tests use fakes. Outputs are
    cached per text (T5 is frozen, so a cached result is exact).
    """

    def __init__(self, directory: str | Path | None, max_length: int = 64, *, tokenizer: Any = None, model: Any = None,
                 device: str | torch.device = "cpu", cache_size: int = 1024):
        self.directory = None if directory is None else Path(directory)
        self.max_length = max_length
        self.tokenizer, self.model = tokenizer, model
        self.device = torch.device(device)
        self.cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.cache_size = cache_size

    def __deepcopy__(self, memo: dict) -> "T5Encoder":  # frozen and possibly large: copies of a model share it
        return self

    def check(self) -> None:
        """Raise T5Unavailable (one line, naming what is missing) unless T5 can be loaded."""
        if self.model is not None and self.tokenizer is not None:
            return
        if self.directory is None:
            raise T5Unavailable(f"no T5 directory given: set {T5_ENV} to a local t5-base directory")
        if not self.directory.is_dir():
            raise T5Unavailable(f"T5 text encoder not found: {self.directory} does not exist (download t5-base there, or set {T5_ENV})")
        missing = missing_t5_files(self.directory)
        if missing:
            raise T5Unavailable(f"T5 text encoder at {self.directory} is incomplete: missing {', '.join(missing)}")
        try:
            import transformers  # noqa: F401
        except ImportError:
            raise T5Unavailable("the T5 text encoder needs the `transformers` package, which is not installed: pip install 'lmdm[sao]'") from None

    def load(self, device: str | torch.device | None = None) -> None:
        """Load T5 (once) onto `device` (default: the constructor's)."""
        self.check()
        if self.model is None or self.tokenizer is None:
            from transformers import AutoTokenizer, T5EncoderModel

            self.device = torch.device(device) if device is not None else self.device
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.directory), local_files_only=True)
            self.model = T5EncoderModel.from_pretrained(str(self.directory), local_files_only=True)
            self.model.to(self.device).eval().requires_grad_(False)

    @torch.no_grad()
    def __call__(self, texts: Sequence[str], device: str | torch.device | None = None) -> torch.Tensor:
        """texts -> [B, max_length, d] on the CPU. T5 is loaded, at the first call, onto `device`."""
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if todo:
            self.load(device)
            batch = self.tokenizer(list(todo), truncation=True, max_length=self.max_length, padding="max_length", return_tensors="pt")
            ids, mask = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
            hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state.float()  # [B, L, d]
            hidden = hidden * mask[..., None].to(hidden.dtype)  # padded tokens -> 0, as SAO does
            for t, h in zip(todo, hidden.cpu()):
                self.cache[t] = h
                if len(self.cache) > self.cache_size:
                    self.cache.popitem(last=False)
        for t in texts:
            self.cache.move_to_end(t)
        return torch.stack([self.cache[t] for t in texts])


class SaoTextEncoder(nn.Module):
    """The `TextEncoder` of an SAO model: prompt -> Conditioning(tokens [max_length + 1, d], pooled [d]).

    Only the seconds embedder has weights in the state dict; `t5` is a plain attribute (frozen,
    never trained, not saved), as in stable-audio-tools. `seconds_total` is the number every
    prompt is paired with (the LMDM demos use 12).
    """

    buckets = 0  # training checkpoints record the hashed encoder's vocabulary; this encoder has none

    def __init__(self, cond_dim: int, max_length: int, t5: T5Encoder | Callable[[Sequence[str]], torch.Tensor],
                 seconds_min: float = 0.0, seconds_max: float = 256.0, seconds_total: float = DEFAULT_SECONDS):
        super().__init__()
        self.cond_dim = cond_dim
        self.max_tokens = max_length + 1  # T5 tokens + the seconds token
        self.seconds = SecondsEmbedder(cond_dim, 256, seconds_min, seconds_max)
        self.t5 = t5
        self.seconds_total = float(seconds_total)

    @property
    def position(self) -> torch.Tensor:
        """A parameter on this encoder's device (lmdm.train.objective.encode_captions reads `text.position.device`)."""
        return self.seconds.freqs

    def encode(self, text: str) -> Conditioning:
        device = self.seconds.freqs.device
        tokens = (self.t5([text], device) if isinstance(self.t5, T5Encoder) else self.t5([text]))[0].to(device)  # [max_length, d]
        if tokens.shape != (self.max_tokens - 1, self.cond_dim):
            raise ValueError(f"T5 gave tokens {tuple(tokens.shape)}; this model reads {(self.max_tokens - 1, self.cond_dim)} (max_length, cond_dim)")
        seconds = self.seconds(torch.tensor([self.seconds_total], device=device))[0]  # [d]
        return Conditioning(torch.cat((tokens, seconds[None])), seconds, text)
