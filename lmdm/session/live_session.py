"""LiveSession: the object an app embeds to get a stream of music, block after block.

Two threads meet here. Any thread calls the setters: each validates at once (lmdm/session/values.py)
and queues a change. The thread that pulls audio (`read`, `render`, `next_block`, `next_latents`)
makes each block:

    _start_block: a rewind asked (lmdm/session/rewind.py) -> snapshot -> queued changes -> hooks
                  -> the changes they queued -> fed input taken in -> a prompt glide advanced
    _make_block:  BlockInputs (lmdm/session/inputs.py: accomp, followed sketches, sketch + clock
                  channels) and the delay line's input -> BlockStream.generate -> clean latents
    _generate_audio: the codec's stream decoder -> the delay line records -> OutputMix (dry, wet,
                  limiter) -> audio [block_samples, channels]; changes landing inside the block
                  (landing.py): the block made again with them, joined on their sample

The façade mixes in the setters of four concerns, each beside it: the clock and the sketches
(clocked.py: ClockControls), the player's input and the delay (player.py: PlayerControls),
making blocks again (rewind.py: RewindControls) and changes that land inside a block (landing.py:
LandingControls). Constructing it, using it, `threads`, `device`
and `block_frames`: lmdm/session/__init__.py.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from collections.abc import Callable

import attrs
import numpy as np
import torch

from lmdm.conditioning.beat import HISTORY_S as BEAT_HISTORY_S
from lmdm.conditioning.clock import CLOCK_NAME, mix_tempo
from lmdm.conditioning.delay import (
    MAX_DELAY_BLOCKS,
    DelayLine,
    OutputMix,
)
from lmdm.conditioning.jam import LATENCY_BLOCKS, PlayerInput
from lmdm.conditioning.sketch import has_sketch
from lmdm.conditioning.sketch_sources import KINDS as SKETCH_KINDS
from lmdm.conditioning.text import Conditioning, lerp, mix, null_conditioning
from lmdm.model.lmdm import LMDM
from lmdm.model.placement import HostCodec, Placement, model_placement, place, placement
from lmdm.session.inputs import BlockInputs
from lmdm.session.clocked import ClockControls
from lmdm.session.landing import LANDING_FADE_S, LandingControls, spliced
from lmdm.session.player import PlayerControls
from lmdm.session.rewind import REWIND_BLOCKS, RewindControls, RewindHistory, remake_newest, snapshot, take_rewind
from lmdm.session.values import (
    PromptSpec,
    SessionStats,
    Settings,
    check_bool,
    check_share,
    check_follow,
    normalise_prompt,
)
from lmdm.stream import BlockStream
from lmdm.threads import PLAY_THREADS, check_threads, torch_threads
from lmdm_dsl.clock import Clock

log = logging.getLogger(__package__)  # "lmdm.session", as before the package was split

Hook = Callable[["LiveSession", int], None]


class LiveSession(ClockControls, PlayerControls, RewindControls, LandingControls):
    def __init__(
        self,
        model: LMDM,
        prompt: PromptSpec = "",
        regime: str = "block_causal",
        use_cache: bool = True,
        steps: int | None = None,
        sampler: str = "pingpong",
        cfg: float | None = None,
        seed: int = 0,
        commit: str = "fused",
        mix_input: bool = False,
        jam: bool = True,
        jam_follow: str | None = None,
        clock_beat: bool = True,
        threads: int | None = PLAY_THREADS,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        block_frames: int | None = None,
        guide_inputs: float | None = None,
    ):
        # block_frames: play blocks of this many latent frames, one of the lengths the model was
        # trained on (model.config.geometries; None: its own): shorter blocks, changes heard sooner
        self.model = model = model if block_frames is None else model.reblocked(block_frames)
        self.placement: Placement = model_placement(model) if device is None and dtype is None else \
            placement(model_placement(model).device if device is None else device, dtype)
        place(model, self.placement)
        self.codec = HostCodec(model.codec)  # host tensors in, CPU float32 out, whatever device it runs on
        # torch intra-op threads while this session computes a block (lmdm/threads.py); None: torch's own
        self.threads = None if threads is None else check_threads(threads)
        cfg = getattr(model, "guidance", 1.0) if cfg is None else cfg  # None: the scale the model recommends
        steps = getattr(model, "steps", 8) if steps is None else steps  # None: the steps the model is made for
        # guide_inputs 0..1: how much of the sketch and clock CFG's unconditional pass goes without, so
        # guidance pushes towards them as well as the prompt (BlockStream.generate's guide_target); None: the model's own
        self.guide_inputs = check_share("guide_inputs", getattr(model, "guide_inputs", 0.0) if guide_inputs is None else guide_inputs)
        self.settings = Settings(steps=steps, sampler=sampler, cfg=cfg, seed=seed, regime=regime)
        self.stream = BlockStream(model, regime, use_cache, commit)
        self._null = null_conditioning(model.config.cond_dim, model.config.cond_tokens)
        parts = normalise_prompt(prompt)
        self._cond = self._encode(parts)
        asked = mix_tempo(parts)  # the stream's clock starts at the tempo the prompt names, if any
        clock_beat = check_bool("clock_beat", clock_beat)
        self._glide: tuple[Conditioning, Conditioning, int, int] | None = None  # (from, to, done, total)
        self._generator = torch.Generator().manual_seed(seed)
        self._decoder = self.codec.stream_decoder()
        self._leftover = np.zeros((0, model.channels), dtype=np.float32)
        self._lock = threading.RLock()
        self._pending: list[Callable[[], None]] = []
        self._hooks: list[Hook] = []
        self.errors: collections.deque[str] = collections.deque(maxlen=100)
        self._error_count = 0
        self._resets = 0
        self._blocks = 0  # blocks generated (next_latents counts too)
        self._compute_ms: list[float] = []
        # conditioning beyond the prompt: sketches, the player's input, the delay
        self._mix_input = check_bool("mix_input", mix_input)
        jam = check_bool("jam", jam)
        follow = check_follow(jam_follow) if jam_follow is not None else ("key" if self.supports("sketch") else "listen")
        self._player = PlayerInput(self.codec, model.sample_rate, model.channels, model.config.block_frames, encode=self.supports("jam"),
                                   frame_rate=model.config.frame_rate)
        # the clock, the sketches and the jam mode, and the per-block tensors made from them
        self._inputs = BlockInputs(model.config, self._player, sketch=self.supports("sketch"), clock_input=self.supports("clock"),
                                   clock=Clock(bpm=120.0 if asked is None else asked), tempo_asked=asked is not None,
                                   clock_beat=clock_beat, jam=jam, follow=follow)
        self._inbox: list[tuple[np.ndarray, int | None]] = []  # fed input, taken in at the next block
        self._delay: DelayLine | None = None
        self._output = OutputMix(model.sample_rate)  # wet and dry gains, the limiter
        # input kept: the longest delay, or the history the accomp must cover, plus two blocks
        self._input_keep_blocks = max(math.ceil(MAX_DELAY_BLOCKS), -(-self.stream.keep // model.config.block_frames),
                                      math.ceil(BEAT_HISTORY_S / model.config.block_seconds) + LATENCY_BLOCKS) + 2 + REWIND_BLOCKS
        self._jamming = False
        # the state at the start of each of the newest blocks, and the changes that block applied (rewind)
        self._rewinds = RewindHistory(REWIND_BLOCKS)
        self._nudged = False  # a change the hooks apply is waiting (a MIDI knob): see nudge
        self._landing_local = threading.local()  # `landing` on this thread (lmdm/session/landing.py)
        self._landed: list[tuple[float, Callable[[], None]]] = []  # changes held for a landing in the block being started
        self._hurry: int | None = None  # the next block's sampler steps at most, once (see hurry)

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
    def frame_rate(self) -> float:
        """Latent frames per second (sketch arrays have one value per frame)."""
        return self.model.config.frame_rate

    @property
    def block_index(self) -> int:
        """Blocks generated so far (the index of the next block)."""
        return self._blocks

    def supports(self, feature: str) -> bool:
        """Optional features of this model.

        "sketch": it was trained with the sketch channels (melody, rhythm, loudness);
        "jam": it has the accomp input (it can accompany `feed_input`);
        "delay": its codec can encode audio (the generative delay re-imagines encoded input);
        "clock": it was trained with the clock input (tempo, beat and bar phase; lmdm/conditioning/clock.py).
        """
        cfg = self.model.config
        if feature == "clock":
            return cfg.add_slice(CLOCK_NAME) is not None
        if feature == "sketch":
            return has_sketch(cfg.extra_add_inputs)
        if feature == "jam":
            return cfg.add_slice("accomp") is not None
        if feature == "delay":
            return callable(getattr(self.model.codec, "stream_encoder", None))
        return False

    def _require(self, feature: str) -> None:
        if not self.supports(feature):
            raise ValueError(f"{feature} is not available in this model")

    # setters: validate now, apply at the next block -------------------------------------------
    def _later(self, change: Callable[[], None]) -> None:
        with self._lock:
            self._queue(change)  # for the next block start, or inside `landing` for its sample (landing.py)

    def _encode(self, parts: tuple[tuple[str, float], ...]) -> Conditioning:
        conds = [(self.model.encode_prompt(text), w) for text, w in parts]
        return mix(conds)

    def set_prompt(self, prompt: PromptSpec, *, over_blocks: int = 0) -> None:
        """A text or a weighted mix [(text, weight), ...]; `over_blocks` > 0 glides in embedding space."""
        if isinstance(over_blocks, bool) or not isinstance(over_blocks, int) or over_blocks < 0:
            raise ValueError(f"over_blocks must be a whole number >= 0, got {over_blocks!r}")
        parts = normalise_prompt(prompt)
        target = self._encode(parts)
        asked = mix_tempo(parts)

        def change() -> None:
            if over_blocks == 0:
                self._cond, self._glide = target, None
            else:
                self._glide = (self._cond, target, 0, over_blocks)
            if asked is not None and (asked != self._inputs.clock.bpm or not self._inputs.tempo_asked):
                self._inputs.retempo(asked, None, self.block_index)

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

    def _apply_pending(self) -> list[Callable[[], None]]:
        with self._lock:
            pending, self._pending = self._pending, []
        for change in pending:
            change()
        return pending

    def _start_block(self) -> tuple[Conditioning, Settings]:
        """Apply queued changes, run hooks, apply what the hooks queued, advance a glide: the state this
        block is made with. Changes queued from Python (a tempo, a prompt naming one) apply before the
        hooks, so the language's scheduler sees this block's clock, not the last one's."""
        quick = take_rewind(self)  # a rewind may ask fewer steps for this block
        with self._lock:
            self._nudged = False
            hurried, self._hurry = self._hurry, None
        quick = hurried if quick is None else quick  # ... or a hurry
        snap = snapshot(self)
        snap.changes.extend(self._apply_pending())
        with self._lock:
            hooks = list(self._hooks)
        for hook in hooks:
            try:
                hook(self, self.block_index)
            except Exception as e:  # noqa: BLE001 - a performer's hook must never stop the music
                self._report(f"hook {getattr(hook, '__name__', hook)!r} failed: {e}")
        snap.changes.extend(self._apply_pending())
        self._rewinds.record(snap)
        with self._lock:
            inbox, self._inbox = self._inbox, []
        for audio, rate in inbox:
            self._player.push(audio, rate)
        if self._glide is not None:
            start, target, done, total = self._glide
            done += 1
            self._cond = lerp(start, target, done / total) if done < total else target
            self._glide = None if done >= total else (start, target, done, total)
        if quick is not None and quick < self.settings.steps:
            return self._cond, attrs.evolve(self.settings, steps=quick)
        return self._cond, self.settings

    def next_latents(self) -> torch.Tensor:
        """Generate one block; returns its clean latents [1, D, block_frames] (audio is not decoded,
        so neither the delay's feedback nor the output mix happen), on the CPU. Changes landing
        inside it (`landing`) apply from the next block's start: latents have no landing sample."""
        with torch_threads(self.threads):
            latents = self._make_block()[0].cpu()
        if (landed := self._take_landed()) is not None:
            with self._lock:
                self._pending = landed[1] + self._pending
        return latents

    def _target_add(self, block: int, listening: bool, followed: dict[str, np.ndarray]) -> torch.Tensor | None:
        """The block's sketch and clock channels (BlockInputs.target_add)."""
        return self._inputs.target_add(block, listening, followed)

    def _make_block(self) -> tuple[torch.Tensor, float]:
        """Generate the next block with everything in force; returns (latents, its wet gain)."""
        cond, s = self._start_block()
        n = self.block_index
        accomp = self._inputs.accomp(n, self.stream, self._delay is not None)
        if accomp is not None:
            self.stream.set_accomp(accomp)
        listening = accomp is not None and bool(accomp[0, 0, -self.model.config.context_frames :].any())
        followed = self._inputs.followed(n, self._delay is not None)
        self._jamming = listening or bool(followed)
        init, strength, wet_gain = None, 1.0, 1.0
        if self._delay_active:
            d = self._delay.block_input(n, self.block_samples, self._player.audio, self.model.config.block_frames)
            init, strength, wet_gain = d.init, d.strength, d.mix
            cond = cond if d.cond is None else d.cond
        latents = self.stream.generate(
            cond, steps=s.steps, sampler=s.sampler, cfg=s.cfg, uncond=self._null, generator=self._generator,
            target_add=self._target_add(n, listening, followed), init=init, strength=strength, guide_target=self.guide_inputs,
        )
        self._blocks += 1
        return latents, wet_gain

    def _generate_audio(self) -> np.ndarray:
        t0 = time.perf_counter()
        out = self._block_audio(*self._make_block())
        if (landed := self._take_landed()) is not None:  # changes due inside this block: make it again with them
            fraction, changes = landed
            remake_newest(self, changes)  # back to this block's start: its changes, then the landed ones
            again = self._block_audio(*self._make_block())
            out = spliced(out, again, round(fraction * len(out)), round(LANDING_FADE_S * self.sample_rate))
            if (late := self._take_landed()) is not None:  # landed while it was made again: from the next block on
                with self._lock:
                    self._pending = late[1] + self._pending
        self._compute_ms.append((time.perf_counter() - t0) * 1000.0)
        return out

    def _block_audio(self, latents: torch.Tensor, wet_gain: float) -> np.ndarray:
        """The block just made, decoded, recorded by the delay line and mixed: [block_samples, channels]."""
        S = self.block_samples
        n = self.block_index - 1  # the block just made (a rewind at its start may have moved the count back)
        with torch.no_grad():
            audio = self._decoder.push(latents)[0].T.contiguous().numpy()  # [samples, channels]
        if self._delay_active:  # kept: the delay time, this block and the blocks a rewind may make again
            self._delay.record(n, S, audio, self._delay.settings.delay_samples(S) + (1 + REWIND_BLOCKS) * S)
        dry_gain = ((1.0 - wet_gain) if self._delay_active else 1.0) if self._mix_input else 0.0
        dry = self._player.audio.read(n * S, len(audio)) if (self._mix_input or self._output.needs_dry) else None
        out = self._output.mix(audio, dry, wet_gain, dry_gain)
        self._player.forget_before((n + 1 - self._input_keep_blocks) * S)
        return out

    def read(self, n: int) -> np.ndarray:
        """The next n samples of the stream [n, channels], generating blocks as needed."""
        if n < 0:
            raise ValueError(f"cannot read a negative number of samples ({n})")
        parts, have = [self._leftover], len(self._leftover)
        with torch_threads(self.threads):
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
            blocks=self._blocks,
            cache_resets=self._resets,
            cache_rebuilds=self.stream.rebuilds,
            last_compute_ms=ms[-1] if ms else 0.0,
            mean_compute_ms=mean,
            real_time_factor=mean / 1000.0 / self.block_seconds,
            seconds=self._blocks * self.block_seconds,
            prompt=self._cond.text,
            regime=s.regime,
            steps=s.steps,
            sampler=s.sampler,
            cfg=s.cfg,
            seed=s.seed,
            use_cache=self.stream.use_cache,
            cache_bytes=self.stream.cache_bytes,
            errors=self._error_count,
            sketches=tuple(k for k in SKETCH_KINDS if k in self._inputs.sketches),
            delay="" if self._delay is None else self._delay.settings.describe() + ("" if self._delay_active else " (waiting for input)"),
            jamming=self._jamming,
            jam_follow=self._inputs.follow,
            limited_samples=self._output.limited,
            input_seconds=self._player.samples / self.sample_rate,
        )
