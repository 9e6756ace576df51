"""A small stand-in for ``lmdm.LiveSession``: the contract, no model.

It validates like the real session should (setters raise ValueError on bad input), calls its
hooks before each block while holding its own (re-entrant) lock as a real generation thread
might, and records every call in ``calls`` so tests can see what the interpreter did.
"""

from __future__ import annotations

import math
import threading
from typing import Callable, Sequence

import attrs

from lmdm_dsl.values import quote


@attrs.frozen
class FakeStats:
    blocks: int
    cache_resets: int
    cache_rebuilds: int
    last_compute_ms: float
    mean_compute_ms: float
    real_time_factor: float
    prompt: str
    regime: str
    steps: int
    cfg: float
    seed: int


class FakeLiveSession:
    REGIMES = ("block_causal", "encdec", "naive")

    def __init__(
        self,
        *,
        block_seconds: float = 2.0,
        frame_rate: float = 25.0,
        features: Sequence[str] = ("sketch", "delay"),
        restart_count_on_reset: bool = False,
    ):
        self.sample_rate = 44_100
        self.channels = 2
        self.block_seconds = block_seconds
        self.frame_rate = frame_rate  # latent frames per second (needed for sketches)
        self.block_index = 0
        self.features = set(features)
        self.restart_count_on_reset = restart_count_on_reset
        self.calls: list[tuple] = []
        self._hooks: list[Callable] = []
        self._lock = threading.RLock()
        self._prompt, self._regime, self._steps, self._cfg, self._seed = "", "block_causal", 8, 1.0, 0
        self._resets = 0

    # --- the contract ----------------------------------------------------------------------------

    def set_prompt(self, prompt: str | Sequence[tuple[str, float]], *, over_blocks: int = 0) -> None:
        if isinstance(prompt, str):
            if not prompt.strip():
                raise ValueError("prompt is empty")
            shown = prompt
        else:
            pairs = [(str(text), float(weight)) for text, weight in prompt]
            if not pairs or any(w < 0 or not math.isfinite(w) for _, w in pairs) or sum(w for _, w in pairs) <= 0:
                raise ValueError(f"bad prompt mix {pairs!r}")
            shown = " + ".join(f"{quote(t)} * {w:g}" for t, w in pairs)  # as LiveSession reports a mix
        if over_blocks < 0:
            raise ValueError("over_blocks must be >= 0")
        with self._lock:
            self._prompt = shown
            self.calls.append(("set_prompt", prompt, over_blocks))

    def set_steps(self, n: int) -> None:
        if not 1 <= n <= 64:
            raise ValueError(f"steps must be in 1..64, got {n}")
        with self._lock:
            self._steps = n
            self.calls.append(("set_steps", n))

    def set_cfg(self, scale: float) -> None:
        if not 0 <= scale <= 20:
            raise ValueError(f"cfg must be in 0..20, got {scale}")
        with self._lock:
            self._cfg = scale
            self.calls.append(("set_cfg", scale))

    def set_seed(self, seed: int) -> None:
        with self._lock:
            self._seed = seed
            self.calls.append(("set_seed", seed))

    def set_regime(self, name: str) -> None:
        if name not in self.REGIMES:
            raise ValueError(f"unknown regime {name!r}")
        with self._lock:
            self._regime = name
            self.calls.append(("set_regime", name))

    def reset(self) -> None:
        with self._lock:
            self._resets += 1
            if self.restart_count_on_reset:
                self.block_index = 0
            self.calls.append(("reset",))

    def add_hook(self, fn: Callable) -> None:
        with self._lock:
            self._hooks.append(fn)

    def remove_hook(self, fn: Callable) -> None:
        with self._lock:
            self._hooks.remove(fn)

    def supports(self, feature: str) -> bool:
        return feature in self.features

    @property
    def stats(self) -> FakeStats:
        with self._lock:
            return FakeStats(
                blocks=self.block_index, cache_resets=self._resets, cache_rebuilds=0, last_compute_ms=500.0,
                mean_compute_ms=500.0, real_time_factor=0.25, prompt=self._prompt, regime=self._regime,
                steps=self._steps, cfg=self._cfg, seed=self._seed,
            )

    # --- beyond the contract: sketches and the generative delay ----------------------------------

    def set_sketch(self, kind: str, frames) -> None:
        assert "sketch" in self.features, "set_sketch called on a session without sketches"
        with self._lock:
            self.calls.append(("set_sketch", kind, frames))

    def set_delay(self, spec) -> None:
        assert "delay" in self.features, "set_delay called on a session without the delay"
        with self._lock:
            self.calls.append(("set_delay", spec))

    # --- driving it --------------------------------------------------------------------------------

    def generate_block(self) -> int:
        """Call the hooks for the next block, then 'generate' it; returns its index."""
        with self._lock:
            index = self.block_index
            for hook in list(self._hooks):
                hook(self, index)
            self.calls.append(("block", index))
            self.block_index += 1
            return index

    def generate(self, n: int) -> None:
        for _ in range(n):
            self.generate_block()

    def calls_named(self, name: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == name]
