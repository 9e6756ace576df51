"""LiveSession: the object an app embeds to get a stream of music, block after block.

    session = LiveSession(model, prompt="dub techno", regime="block_causal")
    audio = session.render(seconds=10)      # float32 [samples, channels]
    session.set_prompt("ambient pads", over_blocks=2)   # takes effect at the next block

Every setter validates at once (ValueError with a clear message) and takes effect at the start
of the next block, on the generation thread; nothing but `reset()` clears the history or the KV
cache. Setters may be called from any thread while another thread pulls audio.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from typing import Callable, Sequence

import attrs
import numpy as np
import torch

from lmdm.conditioning.text import Conditioning, lerp, mix, null_conditioning
from lmdm.model.lmdm import LMDM
from lmdm.model.masks import check_regime
from lmdm.sampling import check_sampler
from lmdm.stream import BlockStream

log = logging.getLogger(__name__)

PromptSpec = str | Sequence[tuple[str, float]]
Hook = Callable[["LiveSession", int], None]

MAX_STEPS = 64
MAX_CFG = 20.0


@attrs.frozen
class Settings:
    """Sampler knobs, validated at the edge."""

    steps: int = attrs.field(default=8)
    sampler: str = attrs.field(default="pingpong", validator=lambda _, __, v: check_sampler(v))
    cfg: float = attrs.field(default=1.0)
    seed: int = attrs.field(default=0)
    regime: str = attrs.field(default="block_causal", validator=lambda _, __, v: check_regime(v))

    @steps.validator
    def _check_steps(self, _: attrs.Attribute, v: int) -> None:
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_STEPS:
            raise ValueError(f"steps must be a whole number from 1 to {MAX_STEPS}, got {v!r}")

    @cfg.validator
    def _check_cfg(self, _: attrs.Attribute, v: float) -> None:
        if not isinstance(v, (int, float)) or not math.isfinite(v) or not 0.0 <= v <= MAX_CFG:
            raise ValueError(f"cfg must be a number from 0 to {MAX_CFG:g}, got {v!r}")

    @seed.validator
    def _check_seed(self, _: attrs.Attribute, v: int) -> None:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**63:
            raise ValueError(f"seed must be a whole number >= 0, got {v!r}")


@attrs.frozen
class SessionStats:
    blocks: int  # blocks generated since the session started
    cache_resets: int  # explicit reset() calls that took effect
    cache_rebuilds: int  # exact cache rebuilds from history (regime switch, CFG on/off), not resets
    last_compute_ms: float  # generation + decode of the last block
    mean_compute_ms: float
    real_time_factor: float  # mean compute time / block duration (< 1 keeps up)
    seconds: float  # audio generated so far
    prompt: str
    regime: str
    steps: int
    sampler: str
    cfg: float
    seed: int
    use_cache: bool
    cache_bytes: int
    errors: int  # hook errors caught (the stream went on)


def normalise_prompt(prompt: PromptSpec) -> tuple[tuple[str, float], ...]:
    """"text" or [(text, weight), ...] -> weights summing to 1; ValueError on nonsense."""
    if isinstance(prompt, str):
        return ((prompt, 1.0),)
    parts = tuple(prompt)
    if not parts:
        raise ValueError("a prompt mix needs at least one (text, weight) pair")
    for part in parts:
        if not (isinstance(part, tuple) and len(part) == 2 and isinstance(part[0], str)):
            raise ValueError(f"a prompt mix is a list of (text, weight) pairs, got {part!r}")
        w = part[1]
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise ValueError(f"prompt weights must be finite numbers >= 0, got {w!r} for {part[0]!r}")
    total = sum(w for _, w in parts)
    if total <= 0:
        raise ValueError("prompt weights must not all be zero")
    return tuple((text, float(w) / total) for text, w in parts)


class LiveSession:
    def __init__(
        self,
        model: LMDM,
        prompt: PromptSpec = "",
        regime: str = "block_causal",
        use_cache: bool = True,
        steps: int = 8,
        sampler: str = "pingpong",
        cfg: float = 1.0,
        seed: int = 0,
        commit: str = "fused",
    ):
        self.model = model
        self.settings = Settings(steps=steps, sampler=sampler, cfg=cfg, seed=seed, regime=regime)
        self.stream = BlockStream(model, regime, use_cache, commit)
        self._null = null_conditioning(model.config.cond_dim, model.config.cond_tokens)
        self._cond = self._encode(normalise_prompt(prompt))
        self._glide: tuple[Conditioning, Conditioning, int, int] | None = None  # (from, to, done, total)
        self._generator = torch.Generator().manual_seed(seed)
        self._decoder = model.codec.stream_decoder()
        self._leftover = np.zeros((0, model.channels), dtype=np.float32)
        self._lock = threading.RLock()
        self._pending: list[Callable[[], None]] = []
        self._hooks: list[Hook] = []
        self.errors: collections.deque[str] = collections.deque(maxlen=100)
        self._error_count = 0
        self._resets = 0
        self._compute_ms: list[float] = []

    # geometry -----------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate

    @property
    def channels(self) -> int:
        return self.model.channels

    @property
    def block_samples(self) -> int:
        return self.model.block_samples

    @property
    def block_seconds(self) -> float:
        return self.model.config.block_seconds

    @property
    def block_index(self) -> int:
        """Blocks generated so far (the index of the next block)."""
        return len(self._compute_ms)

    def supports(self, feature: str) -> bool:
        """Optional features of this model: "sketch", "delay", "jam" (none yet in this version)."""
        return False

    # setters: validate now, apply at the next block -------------------------------------------
    def _later(self, change: Callable[[], None]) -> None:
        with self._lock:
            self._pending.append(change)

    def _encode(self, parts: tuple[tuple[str, float], ...]) -> Conditioning:
        conds = [(self.model.encode_prompt(text), w) for text, w in parts]
        return mix(conds)

    def set_prompt(self, prompt: PromptSpec, *, over_blocks: int = 0) -> None:
        """A text or a weighted mix [(text, weight), ...]; `over_blocks` > 0 glides in embedding space."""
        if isinstance(over_blocks, bool) or not isinstance(over_blocks, int) or over_blocks < 0:
            raise ValueError(f"over_blocks must be a whole number >= 0, got {over_blocks!r}")
        target = self._encode(normalise_prompt(prompt))

        def change() -> None:
            if over_blocks == 0:
                self._cond, self._glide = target, None
            else:
                self._glide = (self._cond, target, 0, over_blocks)

        self._later(change)

    def _set(self, **kw) -> None:
        attrs.evolve(self.settings, **kw)  # validates now, in the caller's thread

        def change() -> None:
            self.settings = attrs.evolve(self.settings, **kw)  # on top of whatever applied before
            if "seed" in kw:
                self._generator.manual_seed(self.settings.seed)
            self.stream.set_regime(self.settings.regime)  # a no-op unless the regime changed

        self._later(change)

    def set_steps(self, n: int) -> None:
        self._set(steps=n)

    def set_sampler(self, name: str) -> None:
        self._set(sampler=name)

    def set_cfg(self, scale: float) -> None:
        self._set(cfg=float(scale) if isinstance(scale, int) and not isinstance(scale, bool) else scale)

    def set_seed(self, seed: int) -> None:
        self._set(seed=seed)

    def set_regime(self, name: str) -> None:
        self._set(regime=name)

    def reset(self) -> None:
        """Clear the history and the KV cache (the only call that does); the audio stays click-free."""

        def change() -> None:
            self.stream.reset()
            self._generator.manual_seed(self.settings.seed)
            self._resets += 1

        self._later(change)

    def add_hook(self, fn: Hook) -> None:
        """fn(session, index of the block about to be generated), on the generation thread."""
        with self._lock:
            self._hooks.append(fn)

    def remove_hook(self, fn: Hook) -> None:
        with self._lock:
            if fn in self._hooks:
                self._hooks.remove(fn)

    # generation ---------------------------------------------------------------------------
    def _report(self, message: str) -> None:
        self._error_count += 1
        self.errors.append(message)
        log.warning(message)

    def _start_block(self) -> tuple[Conditioning, Settings]:
        """Run hooks, apply queued changes, advance a glide: the state this block is made with."""
        with self._lock:
            hooks = list(self._hooks)
        for hook in hooks:
            try:
                hook(self, self.block_index)
            except Exception as e:  # a performer's hook must never stop the music
                self._report(f"hook {getattr(hook, '__name__', hook)!r} failed: {e}")
        with self._lock:
            pending, self._pending = self._pending, []
        for change in pending:
            change()
        if self._glide is not None:
            start, target, done, total = self._glide
            done += 1
            self._cond = lerp(start, target, done / total) if done < total else target
            self._glide = None if done >= total else (start, target, done, total)
        return self._cond, self.settings

    def next_latents(self) -> torch.Tensor:
        """Generate one block; returns its clean latents [1, D, block_frames] (audio is not decoded)."""
        cond, s = self._start_block()
        return self.stream.generate(cond, steps=s.steps, sampler=s.sampler, cfg=s.cfg, uncond=self._null, generator=self._generator)

    def _generate_audio(self) -> np.ndarray:
        t0 = time.perf_counter()
        latents = self.next_latents()
        with torch.no_grad():
            audio = self._decoder.push(latents)[0].T.contiguous().numpy()  # [samples, channels]
        self._compute_ms.append((time.perf_counter() - t0) * 1000.0)
        return audio.astype(np.float32, copy=False)

    def read(self, n: int) -> np.ndarray:
        """The next n samples of the stream [n, channels], generating blocks as needed."""
        if n < 0:
            raise ValueError(f"cannot read a negative number of samples ({n})")
        parts, have = [self._leftover], len(self._leftover)
        while have < n:
            block = self._generate_audio()
            parts.append(block)
            have += len(block)
        audio = np.concatenate(parts) if len(parts) > 1 else parts[0]
        self._leftover = audio[n:]
        return audio[:n]

    def next_block(self) -> np.ndarray:
        """One block of audio [block_samples, channels], continuing exactly where the stream is."""
        return self.read(self.block_samples)

    def render(self, seconds: float) -> np.ndarray:
        """`seconds` of audio [round(seconds * sample_rate), channels]; consecutive calls continue the stream."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
        return self.read(round(seconds * self.sample_rate))

    # status -------------------------------------------------------------------------------
    @property
    def stats(self) -> SessionStats:
        ms = self._compute_ms
        mean = float(np.mean(ms)) if ms else 0.0
        s = self.settings
        return SessionStats(
            blocks=len(ms),
            cache_resets=self._resets,
            cache_rebuilds=self.stream.rebuilds,
            last_compute_ms=ms[-1] if ms else 0.0,
            mean_compute_ms=mean,
            real_time_factor=mean / 1000.0 / self.block_seconds,
            seconds=len(ms) * self.block_seconds,
            prompt=self._cond.text,
            regime=s.regime,
            steps=s.steps,
            sampler=s.sampler,
            cfg=s.cfg,
            seed=s.seed,
            use_cache=self.stream.use_cache,
            cache_bytes=self.stream.cache_bytes,
            errors=self._error_count,
        )
