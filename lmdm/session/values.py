"""The session's value types and the checks at its edge.

    Settings          the sampler knobs (steps, sampler, cfg, seed, regime), frozen, validated when made
    SessionStats      what `LiveSession.stats` reports, frozen
    normalise_prompt  "text" or [(text, weight), ...] -> weights summing to 1
    sketch_tracks     the arguments of `LiveSession.set_sketch` -> {kind: Track, or None: off}

`LiveSession` (lmdm/session/live_session.py) checks its arguments with these (and check_bool,
check_meter, check_follow, check_grid, input_frames) in the caller's thread, before a change is
queued: a bad value is a ValueError with a clear message there, never later on the generation
thread. The ranges are the language's (lmdm_dsl.values), one home.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import numpy as np

from lmdm.audio.resample import MAX_INPUT_CHANNELS, check_rate
from lmdm.conditioning.clock import check_tempo
from lmdm.conditioning.jam import as_frames
from lmdm.conditioning.sketch_sources import KINDS as SKETCH_KINDS
from lmdm.conditioning.sketch_sources import Track, as_track
from lmdm.model.masks import check_regime
from lmdm.sampling import check_sampler
from lmdm_dsl.values import (
    CFG_RANGE,
    MAX_PROMPT_CHARS,
    MAX_PROMPT_TERMS,
    MAX_WEIGHT,
    METER_RANGE,
    STEPS_RANGE,
)

PromptSpec = str | Sequence[tuple[str, float]]

MAX_STEPS = STEPS_RANGE[1]  # the language's ranges (lmdm_dsl.values), one home
MAX_CFG = CFG_RANGE[1]
FEATURES = ("sketch", "jam", "delay", "clock")
JAM_FOLLOW = ("key", "beat", "listen")  # how jamming follows the player (LiveSession.set_jam)
UNSET: object = type("Unset", (), {"__repr__": lambda self: "<unset>"})()


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
        check_steps(v)

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
    sketches: tuple[str, ...] = ()  # sketch controls in force ("melody", "rhythm", "loudness")
    delay: str = ""  # the generative delay in force ("" = off)
    jamming: bool = False  # the last block followed the player (its latents heard, or its beat and notes as sketches)
    jam_follow: str = ""  # how the model follows the player: "key", "beat" or "listen" (see LiveSession.set_jam)
    limited_samples: int = 0  # output samples the safety limiter turned down (above its knee, lmdm/audio/limiter.py)
    input_seconds: float = 0.0  # player input received so far


def check_steps(steps: object, what: str = "steps") -> int:
    """Sampler steps: a whole number from 1 to MAX_STEPS (ValueError naming ``what`` otherwise)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"{what} must be a whole number from 1 to {MAX_STEPS}, got {steps!r}")
    return steps


def normalise_prompt(prompt: PromptSpec) -> tuple[tuple[str, float], ...]:
    """"text" or [(text, weight), ...] -> weights summing to 1; ValueError on nonsense.

    The language's limits hold here too: at most MAX_PROMPT_TERMS texts of MAX_PROMPT_CHARS
    characters, weights from 0 to MAX_WEIGHT."""
    if isinstance(prompt, str):
        _check_prompt_text(prompt)
        return ((prompt, 1.0),)
    parts = tuple(prompt)
    if not 1 <= len(parts) <= MAX_PROMPT_TERMS:
        raise ValueError(f"a prompt mix needs at least one and at most {MAX_PROMPT_TERMS} (text, weight) pairs, got {len(parts)}")
    for part in parts:
        if not (isinstance(part, tuple) and len(part) == 2 and isinstance(part[0], str)):
            raise ValueError(f"a prompt mix is a list of (text, weight) pairs, got {part!r:.80}")
        _check_prompt_text(part[0])
        w = part[1]
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or not 0 <= w <= MAX_WEIGHT:
            raise ValueError(f"prompt weights must be numbers from 0 to {MAX_WEIGHT:g}, got {w!r} for {part[0]!r}")
    total = sum(w for _, w in parts)
    if total <= 0:
        raise ValueError("prompt weights must not all be zero")
    return tuple((text, float(w) / total) for text, w in parts)


def _check_prompt_text(text: str) -> None:
    if len(text) > MAX_PROMPT_CHARS:
        raise ValueError(f"a prompt is at most {MAX_PROMPT_CHARS} characters, got {len(text)}")


def check_meter(beats_per_bar: object) -> int | None:
    """None, or a whole number of beats per bar within METER_RANGE; else ValueError naming the range."""
    lo, hi = METER_RANGE
    if beats_per_bar is not None and (isinstance(beats_per_bar, bool) or not isinstance(beats_per_bar, int) or not lo <= beats_per_bar <= hi):
        raise ValueError(f"beats_per_bar must be a whole number from {lo} to {hi}, got {beats_per_bar!r}")
    return beats_per_bar


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")  # noqa: TRY004 - setters raise ValueError
    return bool(value)


def check_share(name: str, value: object) -> float:
    """A number from 0 to 1 (a share, a weight); else a one-line ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number from 0 to 1, got {value!r}")
    return float(value)


def check_follow(follow: object) -> str:
    if follow not in JAM_FOLLOW:
        raise ValueError(f'jam follow must be "key", "beat" or "listen", got {follow!r}')
    return str(follow)


def check_grid(at_block: object, origin: object) -> float | None:
    """set_tempo's `at_block` (None or a block number >= 0) and `origin` (None or a finite number of
    blocks; not both): the origin as a float, or None."""
    if at_block is not None and (isinstance(at_block, bool) or not isinstance(at_block, int) or at_block < 0):
        raise ValueError(f"at_block must be a block number >= 0, got {at_block!r}")
    if origin is not None:
        if at_block is not None:
            raise ValueError("give at_block or origin, not both")
        if isinstance(origin, bool) or not isinstance(origin, (int, float, np.integer, np.floating)) or not math.isfinite(origin):
            raise ValueError(f"origin must be a finite number of blocks, got {origin!r}")
        origin = float(origin)
    return origin


def input_frames(audio: np.ndarray, sample_rate: int | None, channels: int) -> tuple[np.ndarray, int | None]:
    """feed_input's audio and rate -> (a copy of it as float32 frames [n, channels], the rate or None);
    ValueError on a bad rate or channel count."""
    if sample_rate is not None:
        sample_rate = check_rate(sample_rate, "input sample_rate")
    shape = np.shape(audio)
    if len(shape) == 2 and not 1 <= shape[1] <= MAX_INPUT_CHANNELS:
        raise ValueError(f"input audio must have 1 to {MAX_INPUT_CHANNELS} channels, got {shape[1]}")
    frames = as_frames(audio, channels).copy()
    return frames, None if sample_rate is None else int(sample_rate)


def sketch_tracks(
    kind: object, source: object, melody: object, rhythm: object, loudness: object, *,
    frame_rate: float, bpm: float | None, beats_per_bar: int | None,
) -> dict[str, Track | None]:
    """The arguments of `LiveSession.set_sketch` (see there) -> {kind: its track, or None to turn it
    off}; ValueError on nonsense. `UNSET` marks an argument not given."""
    if bpm is not None:
        check_tempo(bpm)
    check_meter(beats_per_bar)
    changes: dict[str, object] = {}
    if isinstance(kind, dict):
        changes.update(kind)
    elif kind is None and source is UNSET:
        changes.update({k: None for k in SKETCH_KINDS})
    elif kind is not UNSET:
        if source is UNSET:
            raise ValueError("set_sketch(kind, source): give the source, or None to turn that control off")
        changes[kind] = source
    for name, value in (("melody", melody), ("rhythm", rhythm), ("loudness", loudness)):
        if value is not UNSET:
            if name in changes:
                raise ValueError(f"the {name} sketch is given twice")
            changes[name] = value
    if not changes:
        raise ValueError("set_sketch: give a control (melody=, rhythm=, loudness=) or None to turn all off")
    tracks: dict[str, Track | None] = {}
    for name, value in changes.items():
        if name not in SKETCH_KINDS:
            raise ValueError(f"unknown sketch kind {name!r}: choose one of {', '.join(SKETCH_KINDS)}")
        tracks[name] = None if value is None else as_track(name, value, frame_rate=frame_rate, bpm=bpm, beats_per_bar=beats_per_bar)
    return tracks
