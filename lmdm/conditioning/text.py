"""Text conditioning: prompt text -> tokens for cross-attention + a pooled vector.

`TextEncoder` is the protocol; `HashedTextEncoder` is the light built-in encoder, trained with
the model. It never fails on an unseen word: a word is the mean of embeddings of its hashed
character n-grams, so a new word lands near the words it is spelled like.
"""

from __future__ import annotations

import re
import zlib
from typing import Protocol, Sequence, runtime_checkable

import attrs
import torch
from torch import nn


@attrs.frozen(eq=False)
class Conditioning:
    """What the model reads from a prompt: tokens [N, cond_dim] (zeros where padded), pooled [cond_dim]."""

    tokens: torch.Tensor
    pooled: torch.Tensor
    text: str = ""


@runtime_checkable
class TextEncoder(Protocol):
    cond_dim: int
    max_tokens: int

    def encode(self, text: str) -> Conditioning:
        ...


def null_conditioning(cond_dim: int, max_tokens: int) -> Conditioning:
    """The unconditional input (CFG's other half, and text dropout in training): all zeros."""
    return Conditioning(torch.zeros(max_tokens, cond_dim), torch.zeros(cond_dim), "")


def quoted(text: str) -> str:
    """A prompt text in double quotes, its backslashes and quotes escaped (as the language writes it)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def mix(parts: Sequence[tuple[Conditioning, float]]) -> Conditioning:
    """Weighted sum of conditionings (weights are used as given; callers normalise)."""
    if not parts:
        raise ValueError("mix needs at least one (conditioning, weight) pair")
    tokens = sum(w * c.tokens for c, w in parts)
    pooled = sum(w * c.pooled for c, w in parts)
    text = " + ".join(f"{quoted(c.text)} * {w:g}" for c, w in parts) if len(parts) > 1 else parts[0][0].text
    return Conditioning(tokens, pooled, text)


def lerp(a: Conditioning, b: Conditioning, alpha: float) -> Conditioning:
    """Glide from a (alpha=0) to b (alpha=1) in embedding space."""
    return Conditioning(torch.lerp(a.tokens, b.tokens, alpha), torch.lerp(a.pooled, b.pooled, alpha), b.text if alpha >= 0.5 else a.text)


_WORD = re.compile(r"[a-z0-9]+(?:['&][a-z0-9]+)*")


def words(text: str) -> list[str]:
    """Lower-case words and numbers: "Lo-fi, 80 BPM!" -> ["lo", "fi", "80", "bpm"]."""
    return _WORD.findall(text.lower())


def ngrams(word: str, sizes: tuple[int, ...] = (3, 4, 5)) -> list[str]:
    """Character n-grams of "<word>" plus the whole word itself."""
    w = f"<{word}>"
    grams = [w]
    for n in sizes:
        grams += [w[i : i + n] for i in range(max(0, len(w) - n + 1))]
    return grams


def bucket(gram: str, buckets: int) -> int:
    """A stable hash (crc32, not Python's salted hash) of an n-gram into [0, buckets)."""
    return zlib.crc32(gram.encode("utf-8")) % buckets


BUCKETS = 8192  # hash buckets of the n-gram table ("text": {"buckets": ...} in a checkpoint's config.json)
MAX_BUCKETS = 1 << 22  # a config asking for more is refused before the table is made


class HashedTextEncoder(nn.Module):
    def __init__(self, cond_dim: int, max_tokens: int, buckets: int = BUCKETS):
        super().__init__()
        self.cond_dim = cond_dim
        self.max_tokens = max_tokens
        self.buckets = buckets
        self.table = nn.EmbeddingBag(buckets, cond_dim, mode="mean")
        self.position = nn.Parameter(torch.zeros(max_tokens, cond_dim))
        self.norm = nn.LayerNorm(cond_dim)

    def word_ids(self, text: str) -> list[list[int]]:
        return [[bucket(g, self.buckets) for g in ngrams(w)] for w in words(text)[: self.max_tokens]]

    def encode(self, text: str) -> Conditioning:
        ids = self.word_ids(text)
        device = self.position.device
        tokens = torch.zeros(self.max_tokens, self.cond_dim, device=device)
        if not ids:
            return Conditioning(tokens, torch.zeros(self.cond_dim, device=device), text)
        flat = torch.tensor([i for w in ids for i in w], device=device)
        offsets = torch.tensor([0] + [len(w) for w in ids[:-1]], device=device).cumsum(0)
        vecs = self.norm(self.table(flat, offsets)) + self.position[: len(ids)]  # [n_words, cond_dim]
        tokens[: len(ids)] = vecs
        return Conditioning(tokens, vecs.mean(0), text)
