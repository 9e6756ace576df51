"""BlockStream: the clean latent history of one stream, and the block-by-block generator.

One block = `block_frames` latent frames, denoised in `steps` sampler steps while attending to
the last `context_frames` clean frames (the context). How the context is attended to depends on
the regime (see `lmdm.model.masks`); how it is *computed* depends on `use_cache`:

regime        use_cache=False (reference)                      use_cache=True
------------  -----------------------------------------------  ----------------------------------------
naive         every step: full pass over [re-noised ctx |      (nothing can be reused)
              target | t]
encdec        every step: full masked pass over                per block: one pass over the context
              [ctx | target | t]                               caches its K/V; every step runs only
                                                               [target | t] against that cache
block_causal  every step: full masked pass over the history    a KVCache of the last C frames persists
              that can reach the target (depth * C frames)     across blocks; a finished block's K/V are
              + [target | t]                                   computed once ("commit"), either as its
                                                               own pass or fused into the next block's
                                                               first step; the window slides by one block

The two columns give the same stream to float32 rounding (tests check this), across prompt
changes too. In block_causal a frame's cached K/V are computed once, under the prompt in force when
it is committed (the block after the one that made it) or when the cache is rebuilt; the stream
records that prompt per history frame (`made_under`), and the reference reads each frame's prompt
tokens under its own record (a cross-attention mask over several prompts' tokens side by side), so
it is the uncached counterpart of exactly what the cache holds.
Positions: the current context sits at 1..C, the target at C+1..C+B, the t-token at 0; older
history (block_causal reference only) at positions <= 0. RoPE depends only on differences, so
this is the same as what the cache sees after its keys are re-rotated on every slide.

Devices: the stream runs where the model's DiT is (lmdm.model.placement). Its state (history,
accomp, cache) lives there; inputs given on the host (prompts, sketch channels, accomp, SDEdit's
init, primed latents) are moved there, a prompt's tokens once per prompt; noise is drawn from the
given generator wherever it lives (a CPU generator: the same numbers on every device) and copied
over asynchronously; no step waits for the device. `generate` returns the block's latents on the
device, in float32.

Extra per-frame inputs (`ModelConfig.add_inputs`), exactly as in training (lmdm.train.objective):

- a *target add* per block (`generate(target_add=...)`, [1, A, B]): the sketch and clock channels
  of the block being made (lmdm.conditioning); context frames never carry them; `guide_target`:
  classifier-free guidance towards them too (the unconditional pass goes without them);
- the *accomp* history (`set_accomp`, [1, 1 + D, n]): the player's stem latents and a "heard"
  mask, aligned with `history` frame for frame (same length, kept in lockstep by reset, prime and
  the trimming of old frames); the target never carries it. In block_causal with the cache, a
  chunk committed before its accomp was heard has stale K/V: when the accomp of any frame already
  behind the cache changes, the cache is rebuilt exactly from history + accomp by the masked
  bootstrap pass (counted in `rebuilds`, not a reset).
- SDEdit (`generate(init=..., strength=s)`): start the sampler at t = s from `init` noised to s
  instead of from pure noise (lmdm.sampling.sample); s = 1, the default, is the normal path.
"""

from __future__ import annotations

from typing import Sequence

import torch

from lmdm.model.cache import KV, KVCache
from lmdm.conditioning.text import Conditioning
from lmdm.model.lmdm import LMDM
from lmdm.model.masks import block_causal_mask, check_regime
from lmdm.model.window import context_add, window_inputs
from lmdm.sampling import Denoiser, check_sampler, check_start, guided, noised, randn, sample

COMMITS = ("separate", "fused")


class BlockStream:
    def __init__(self, model: LMDM, regime: str = "block_causal", use_cache: bool = True, commit: str = "fused"):
        if commit not in COMMITS:
            raise ValueError(f"unknown commit mode {commit!r}: choose one of {', '.join(COMMITS)}")
        self.model = model
        self.dit = model.dit
        cfg = model.config
        self.config = cfg
        self.B = cfg.block_frames
        self.C = cfg.context_frames
        self.window = cfg.context_blocks + 1  # chunks a block-causal chunk sees, itself included
        self.keep = cfg.depth * self.C  # history that can still reach the next target (block_causal)
        self.regime = check_regime(regime)
        self.use_cache = use_cache
        self.commit = commit
        self.device = model.dit.inv_freq.device  # where the DiT is: the stream's state lives there too
        # [pending | target | t] queries x [cache | pending | target | t] keys, for the fused commit
        self._fused_mask = block_causal_mask(self.C + 2 * self.B, self.B, self.window)[self.C :, :].to(self.device)
        self._placed: dict[int, tuple[Conditioning, Conditioning]] = {}  # id(prompt) -> (prompt, its copy on the device)
        self.rebuilds = 0  # exact cache rebuilds mid-stream (regime switch, CFG on/off, prime, accomp heard late)
        self.accomp_slice = cfg.add_slice("accomp")  # where the accomp channels sit (None: no jamming input)
        self._target = torch.zeros(1, cfg.add_dim, self.B, device=self.device)  # the target add of the block being made
        self.reset()

    # state --------------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the start of a stream: an all-zero clean context (as in training), no cache."""
        self.history = torch.zeros(1, self.config.latent_dim, self.C, device=self.device)
        self.accomp = self._no_accomp(self.C)  # [1, 1 + D, n] aligned with history (None: no accomp input)
        self.made_under: list[tuple[Conditioning, ...] | None] = [None] * self.C  # per history frame (block_causal)
        self.blocks_since_reset = 0
        self.invalidate()

    def invalidate(self) -> None:
        """Drop the cache; it is rebuilt exactly from the history when next needed."""
        self.cache: KVCache | None = None
        self.pending: torch.Tensor | None = None  # last block, not yet committed to the cache
        # block_causal bookkeeping, the same with and without the cache (`_plan`): is there a
        # (real or virtual) cache, for what batch, what accomp its frames were computed with,
        # and how many newest frames are not committed yet
        self._built: int | None = None  # the batch the cache was built for (None: none built)
        self._cache_accomp: torch.Tensor | None = None  # accomp of the committed history the cache was made with
        self._unmade = 0
        self._cross: tuple[tuple[Conditioning, ...], list[KV], torch.Tensor] | None = None

    def _no_accomp(self, n: int) -> torch.Tensor | None:
        return None if self.accomp_slice is None else torch.zeros(1, 1 + self.config.latent_dim, n, device=self.device)

    def _trim(self) -> None:
        """Keep only the history (and its accomp) that can still reach a target."""
        keep = max(self.keep, self.C)
        self.history = self.history[:, :, -keep:]
        self.made_under = self.made_under[-keep:]
        if self.accomp is not None:
            self.accomp = self.accomp[:, :, -keep:]

    def set_accomp(self, accomp: torch.Tensor) -> None:
        """The accomp channels [1, 1 + D, m] ([heard mask, player's stem latents]) of the last m history
        frames (m <= len(history)); older frames get none. Takes effect at the next `generate`."""
        if self.accomp is None:
            raise ValueError("this model has no accomp input (ModelConfig.extra_add_inputs has no 'accomp')")
        n, m = self.history.shape[2], accomp.shape[2]
        if accomp.shape[:2] != (1, 1 + self.config.latent_dim) or m > n:
            raise ValueError(f"accomp must be [1, {1 + self.config.latent_dim}, m <= {n}], got {list(accomp.shape)}")
        full = self._no_accomp(n)
        full[:, :, n - m :] = accomp.to(self.device, full.dtype)
        self.accomp = full

    def set_regime(self, regime: str) -> None:
        if check_regime(regime) != self.regime:
            self.regime = regime
            self.invalidate()

    def prime(self, latents: torch.Tensor) -> None:
        """Continue from given clean latents [1, D, n] (e.g. an encoded audio clip)."""
        self.history = torch.cat((self.history, latents.to(self.device, self.history.dtype)), dim=2)
        self.made_under = self.made_under + [None] * latents.shape[2]
        if self.accomp is not None:
            self.accomp = torch.cat((self.accomp, self._no_accomp(latents.shape[2])), dim=2)
        self._trim()
        self.invalidate()

    def start_from(self, context: torch.Tensor) -> None:
        """Begin from exactly this clean context [1, D, n] (a training window's), as `reset` begins from
        zeros: the history is replaced, no accomp is heard, the cache is rebuilt when next needed."""
        if context.ndim != 3 or context.shape[:2] != (1, self.config.latent_dim):
            raise ValueError(f"context must be [1, {self.config.latent_dim}, n], got {list(context.shape)}")
        self.reset()
        self.history = context.to(self.device, self.history.dtype).clone()
        self.made_under = [None] * context.shape[2]
        self.accomp = self._no_accomp(context.shape[2])

    def detach_cache(self) -> None:
        """Cut the cache's keys/values (and a pending block) from any autograd graph that made them."""
        if self.cache is not None:
            self.cache = KVCache([(k.detach(), v.detach()) for k, v in self.cache.layers])
        if self.pending is not None:
            self.pending = self.pending.detach()

    @property
    def cache_bytes(self) -> int:
        return 0 if self.cache is None else self.cache.nbytes

    # tokens -------------------------------------------------------------------------------
    def _context_add(self, latents: torch.Tensor, accomp: torch.Tensor | None = None) -> torch.Tensor:
        """[context_mask = 1, clean latent, zeros for extra inputs | accomp] per frame: [1, A, n]."""
        add = context_add(latents, self.config.add_dim)
        if accomp is not None and self.accomp_slice is not None:
            add[:, self.accomp_slice, :] = accomp
        return add

    def _accomp_of_last(self, n: int) -> torch.Tensor | None:
        """The accomp channels of the last n history frames (None: the model has none)."""
        return None if self.accomp is None else self.accomp[:, :, self.accomp.shape[2] - n :]

    def _check_target_add(self, target_add: torch.Tensor | None) -> torch.Tensor:
        if target_add is None:
            return torch.zeros(1, self.config.add_dim, self.B, device=self.device)
        if tuple(target_add.shape) != (1, self.config.add_dim, self.B):
            raise ValueError(f"target_add must be [1, {self.config.add_dim}, {self.B}], got {list(target_add.shape)}")
        return target_add.to(self.device, torch.float32)

    def _context_tokens(self, latents: torch.Tensor, batch: int, accomp: torch.Tensor | None = None) -> torch.Tensor:
        return self.dit.embed_context(self._context_add(latents, accomp)).expand(batch, -1, -1)

    def _target_tokens(self, x: torch.Tensor, t: float, pooled: torch.Tensor) -> torch.Tensor:
        batch = pooled.shape[0]
        h = self.dit.embed_frames(x.expand(batch, -1, -1), self._target, None)  # route = 1 on target frames: a no-op
        return torch.cat((h, self.dit.embed_time(torch.full((batch,), t, device=self.device), pooled)), dim=1)

    def _positions(self, first: int, n: int, with_t: bool = False) -> torch.Tensor:
        p = torch.arange(first, first + n, device=self.device)
        return torch.cat((p, torch.zeros(1, dtype=p.dtype, device=self.device))) if with_t else p

    def _place(self, cond: Conditioning | None) -> Conditioning | None:
        """The prompt with its tensors on the stream's device: the same object on every call (the
        cache's prompt bookkeeping goes by identity), moved once per prompt."""
        if cond is None or cond.tokens.device == self.device:
            return cond
        hit = self._placed.get(id(cond))
        if hit is None or hit[0] is not cond:
            hit = (cond, Conditioning(cond.tokens.to(self.device), cond.pooled.to(self.device), cond.text))
            if len(self._placed) >= 16:  # prompts no longer in use (a glide makes one per block)
                self._placed.pop(next(iter(self._placed)))
            self._placed[id(cond)] = hit
        return hit[1]

    def _cross_inputs(self, conds: tuple[Conditioning, ...]) -> tuple[list[KV], torch.Tensor]:
        """Per-layer cross-attention K/V for these prompts, computed once per prompt change."""
        if self._cross is None or len(self._cross[0]) != len(conds) or any(a is not b for a, b in zip(self._cross[0], conds)):
            tokens = torch.stack([c.tokens for c in conds])
            pooled = torch.stack([c.pooled for c in conds])
            self._cross = (conds, self.dit.cross_kv(tokens), pooled)
        return self._cross[1], self._cross[2]

    @staticmethod
    def _combine(v: torch.Tensor, scale: float) -> torch.Tensor:
        return v if v.shape[0] == 1 else guided(v[0:1], v[1:2], scale)

    # generation ---------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        cond: Conditioning,
        *,
        steps: int = 8,
        sampler: str = "pingpong",
        cfg: float = 1.0,
        uncond: Conditioning | None = None,
        generator: torch.Generator | None = None,
        target_add: torch.Tensor | None = None,
        init: torch.Tensor | None = None,
        strength: float = 1.0, guide_target: float = 0.0,
    ) -> torch.Tensor:
        """Denoise the next block; returns its clean latents [1, D, B] and appends them to the history.

        target_add [1, A, B]: what the target frames carry in the additive input (the sketch
        channels; zeros elsewhere), default all zeros. init [1, D, B] + strength < 1: SDEdit,
        start from `init` noised to t = strength (0 returns `init` itself, 1 ignores it).
        guide_target (0..1, cfg != 1): the share of the target add the unconditional pass goes without.
        """
        check_sampler(sampler)
        strength = check_start(strength)
        if init is not None and tuple(init.shape) != (1, self.config.latent_dim, self.B):
            raise ValueError(f"init must be [1, {self.config.latent_dim}, {self.B}], got {list(init.shape)}")
        cond, uncond = self._place(cond), self._place(uncond)
        denoise = self.denoiser(cond, cfg=cfg, uncond=uncond, generator=generator, target_add=target_add, guide_target=guide_target)
        noise = randn((1, self.config.latent_dim, self.B), generator, self.device)
        init = None if init is None else init.to(self.device)
        x0 = sample(denoise, noise, steps, sampler, generator, init=init, start=strength)
        if self.pending is not None:  # strength 0 ran no step, so the fused commit did not happen
            self._commit_separately((cond,) if cfg == 1.0 else (cond, uncond))
        self.append(x0)
        return x0

    def denoiser(
        self,
        cond: Conditioning,
        *,
        cfg: float = 1.0,
        uncond: Conditioning | None = None,
        generator: torch.Generator | None = None,
        target_add: torch.Tensor | None = None,
        guide_target: float = 0.0,
    ) -> Denoiser:
        """The (x, t, step) -> v function `generate` samples the next block with.

        For loops that drive the sampler themselves (ARC-Forcing, lmdm.train.arc_forcing): run at
        least one step of it, then `append` the block's clean latents. Creating it may fill the
        cache (bootstrap, enc-dec context pass); no random numbers are drawn.
        """
        if cfg != 1.0 and uncond is None:
            raise ValueError("cfg != 1 needs an unconditional Conditioning (uncond=...)")
        cond, uncond = self._place(cond), self._place(uncond)
        self._target = self._check_target_add(target_add)  # [1, A, B], or [2, A, B]: the cond's and the uncond's
        if guide_target and cfg != 1.0:
            self._target = torch.cat((self._target, self._target * (1.0 - float(guide_target))))
        conds = (cond,) if cfg == 1.0 else (cond, uncond)
        self._rebuild = self._plan(conds) if self.regime == "block_causal" else False
        return {
            ("naive", False): self._naive, ("naive", True): self._naive,
            ("encdec", False): self._encdec_reference, ("encdec", True): self._encdec_cached,
            ("block_causal", False): self._block_causal_reference, ("block_causal", True): self._block_causal_cached,
        }[(self.regime, self.use_cache)](conds, cfg, generator)

    def append(self, x0: torch.Tensor) -> None:
        """A finished block's clean latents [1, D, B] join the history (block_causal with the cache:
        as the pending block, committed by the next block's first step), as at the end of `generate`."""
        x0 = x0.to(self.device)
        self.history = torch.cat((self.history, x0), dim=2)
        self.made_under = self.made_under + [None] * self.B
        self._unmade += self.B
        if self.accomp is not None:
            self.accomp = torch.cat((self.accomp, self._no_accomp(self.B)), dim=2)  # the target is never heard
        self._trim()
        self.pending = x0 if (self.regime == "block_causal" and self.use_cache) else None
        self.blocks_since_reset += 1

    def _full_pass(
        self, conds: Sequence[Conditioning], scale: float, generator, ctx: torch.Tensor, regime: str,
        made: Sequence[tuple[Conditioning, ...] | None] | None = None,
    ):
        """Every step, one full `DiT.forward` over [ctx | target | t]: the uncached path.

        encdec / block_causal: routed, clean context (the reference the cache must equal).
        naive: the baseline, context re-noised to t each step, no routing.
        The window's inputs come from `window_inputs`, exactly as in training (lmdm.train), with
        the accomp of the context frames and this block's target add written in (as
        lmdm.train.objective.add_accomp / add_sketch do). ``made``: the prompts each context frame was
        made under (block_causal); the target and the t-token read ``conds``.
        """
        n = ctx.shape[2]
        renoise = regime == "naive"
        tokens, cross_mask = _prompt_tokens(tuple(conds), made, self.B + 1)
        pooled = torch.stack([c.pooled for c in conds])
        w = window_inputs(regime, self._context_add(ctx, self._accomp_of_last(n)), self.B, self.C, self.window)
        add = w.add.expand(len(self._target), -1, -1).clone()  # [1 or 2, A, n + B]: one target add per pass
        add[:, :, n:] = self._target

        def denoise(x: torch.Tensor, t: float, i: int) -> torch.Tensor:
            c = noised(ctx, randn(tuple(ctx.shape), generator, self.device), t) if renoise else torch.zeros_like(ctx)
            full = torch.cat((c, x), dim=2).expand(len(conds), -1, -1)
            v = self.dit(full, torch.full((len(conds),), t, device=self.device), add, tokens, pooled, w.route, w.positions, w.mask, cross_mask)
            return self._combine(v[:, :, n:], scale)

        return denoise

    def _naive(self, conds: Sequence[Conditioning], scale: float, generator):
        """Baseline outpainting: the context is re-noised to t at every step; no routing, no mask."""
        return self._full_pass(conds, scale, generator, self.history[:, :, -self.C:], "naive")

    def _encdec_reference(self, conds: Sequence[Conditioning], scale: float, generator):
        return self._full_pass(conds, scale, generator, self.history[:, :, -self.C:], "encdec")

    def _encdec_cached(self, conds: Sequence[Conditioning], scale: float, generator):
        C = self.C
        cross_kv, pooled = self._cross_inputs(tuple(conds))
        ctx_tokens = self._context_tokens(self.history[:, :, -C:], len(conds), self._accomp_of_last(C))
        _, kv = self.dit.run(ctx_tokens, self._positions(1, C), None, cross_kv)  # context: bidirectional
        self.cache = KVCache(kv)
        positions = self._positions(C + 1, self.B, with_t=True)
        past = self.cache.buffers(self.B + 1)  # each step writes its own k/v after the context's

        def denoise(x: torch.Tensor, t: float, i: int) -> torch.Tensor:
            h, _ = self.dit.run(self._target_tokens(x, t, pooled), positions, None, cross_kv, past=past)
            return self._combine(self.dit.head(h[:, :-1]), scale)

        return denoise

    def _history_positions(self, frames: int) -> torch.Tensor:
        """Positions of the last `frames` history frames: the current context at 1..C, older <= 0."""
        return self._positions(self.C - frames + 1, frames)

    def _block_causal_reference(self, conds: Sequence[Conditioning], scale: float, generator):
        ctx = self.history[:, :, -self.keep:]
        return self._full_pass(conds, scale, generator, ctx, "block_causal", self.made_under[-ctx.shape[2]:])

    def _plan(self, conds: tuple[Conditioning, ...]) -> bool:
        """Before a block_causal block, with or without the cache: which history frames have their K/V
        computed now, under ``conds``. True: the cache is (re)built from the whole history (stream
        start, after `invalidate`, a new CFG batch, an accomp heard late); else the frames appended
        since the last block are committed. Records ``made_under`` and the accomp of the cache's frames."""
        n = self.history.shape[2]
        rebuild = self._built != len(conds) or self._stale()
        now = n if rebuild else self._unmade  # the newest frames whose K/V are computed now
        if now:
            self.made_under = self.made_under[: n - now] + [conds] * now
        if self.accomp is not None and now:
            new = self._accomp_of_last(now)
            self._cache_accomp = new.clone() if rebuild else torch.cat((self._cache_accomp, new), dim=2)[:, :, -self.keep :]
        self._built, self._unmade = len(conds), 0
        return rebuild

    def _bootstrap(self, cross_kv: list[KV], batch: int) -> None:
        """Fill the cache from the history in one masked pass (stream start, or after invalidate)."""
        hist = self.history[:, :, -self.keep:]
        n = hist.shape[2]
        mask = block_causal_mask(n, self.B, self.window)[:-1, :-1].to(self.device)  # frames only, no t-token
        accomp = self._accomp_of_last(n)
        _, kv = self.dit.run(self._context_tokens(hist, batch, accomp), self._history_positions(n), mask, cross_kv)
        self.cache = KVCache([(k[:, :, -self.C:], v[:, :, -self.C:]) for k, v in kv])
        self.pending = None
        if self.blocks_since_reset > 0:
            self.rebuilds += 1

    def _stale(self) -> bool:
        """Has the accomp of a frame the cache was computed from changed since (heard late)?"""
        if self.accomp is None or self._cache_accomp is None:
            return False
        committed = self.accomp[:, :, : self.accomp.shape[2] - self._unmade]
        n = min(committed.shape[2], self._cache_accomp.shape[2])
        return not torch.equal(committed[:, :, committed.shape[2] - n :], self._cache_accomp[:, :, self._cache_accomp.shape[2] - n :])

    def _committed(self) -> None:
        """The pending block joined the cache (its record was made by `_plan`)."""
        self.pending = None

    def _commit_separately(self, conds: Sequence[Conditioning]) -> None:
        """Slide first (cached keys move back one block), then the finished block joins at C-B+1..C."""
        C, B = self.C, self.B
        cross_kv, _ = self._cross_inputs(tuple(conds))
        shifted = self.cache.shifted(-B, self.dit.inv_freq)
        tokens = self._context_tokens(self.pending, len(conds), self._accomp_of_last(B))
        _, new = self.dit.run(tokens, self._positions(C - B + 1, B), None, cross_kv, past=shifted.layers)
        self.cache = shifted.slid(B, new)
        self._committed()

    def _block_causal_cached(self, conds: Sequence[Conditioning], scale: float, generator):
        C, B = self.C, self.B
        cross_kv, pooled = self._cross_inputs(tuple(conds))
        if self._rebuild:  # no cache yet, a new CFG batch, or a chunk committed before its accomp was heard
            self._bootstrap(cross_kv, len(conds))
        freqs = self.dit.inv_freq
        if self.pending is not None and self.commit == "separate":
            self._commit_separately(conds)
        positions = self._positions(C + 1, B, with_t=True)
        fused_positions = torch.cat((self._positions(C - B + 1, B), positions))
        buffers: list = []  # [(cache, its per-layer KVBuffers)]: steps write their k/v in place

        def past() -> list:
            if not buffers or buffers[0][0] is not self.cache:
                buffers[:] = [(self.cache, self.cache.buffers(B + 1))]
            return buffers[0][1]

        def denoise(x: torch.Tensor, t: float, i: int) -> torch.Tensor:
            if self.pending is not None:  # fused commit: the finished block rides along with step 1
                shifted = self.cache.shifted(-B, freqs)
                pending = self._context_tokens(self.pending, len(conds), self._accomp_of_last(B))
                h = torch.cat((pending, self._target_tokens(x, t, pooled)), dim=1)
                h, new = self.dit.run(h, fused_positions, self._fused_mask, cross_kv, past=shifted.layers)
                self.cache = shifted.slid(B, [(k[:, :, :B], v[:, :, :B]) for k, v in new])
                self._committed()
                return self._combine(self.dit.head(h[:, B:-1]), scale)
            h, _ = self.dit.run(self._target_tokens(x, t, pooled), positions, None, cross_kv, past=past())
            return self._combine(self.dit.head(h[:, :-1]), scale)

        return denoise


def _prompt_tokens(
    conds: tuple[Conditioning, ...], made: Sequence[tuple[Conditioning, ...] | None] | None, tail: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The prompt tokens of a full pass [batch, G * N, cond_dim] and the cross-attention mask
    [len(made) + tail, G * N] that has each context frame read the prompt it was made under (G
    distinct prompts side by side) and the ``tail`` (target and t-token) read ``conds``. One prompt
    for all: ``conds``' tokens and no mask."""
    groups: list[tuple[Conditioning, ...]] = [conds]

    def group(m: tuple[Conditioning, ...] | None) -> int:
        m = conds if m is None else m
        for i, g in enumerate(groups):
            if len(g) == len(m) and all(a is b for a, b in zip(g, m)):
                return i
        groups.append(m)
        return len(groups) - 1

    owner = [group(m) for m in (made or ())] + [0] * tail
    tokens = torch.cat([torch.stack([c.tokens for c in g]) for g in groups], dim=1)
    if len(groups) == 1:
        return tokens, None
    n = conds[0].tokens.shape[0]
    mask = (torch.arange(len(groups) * n) // n)[None, :] == torch.tensor(owner)[:, None]
    return tokens, mask.to(tokens.device)
