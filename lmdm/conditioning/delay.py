"""The generative delay: each repeat of the player's input is re-imagined by the model.

For block n, with delay time D (samples; any number of blocks, fractional allowed):

    line(t)  = input(t - D) + feedback * wet(t - D)              the delay line, in audio
    z        = codec stream encoder(line over block n)           [1, latent_dim, B]
    wet      = decode(BlockStream.generate(init=z, strength=s))  SDEdit: z noised to t = s, then
                                                                 denoised under the repeat's prompt,
                                                                 with the stream's own context
    out      = mix * wet  (+ (1 - mix) * input(t) with mix_input)

s = 0 gives back the delay line itself (through the codec), s = 1 ignores it (plain generation
under the prompt). Repeat r = floor((n - first block) * B / D) takes prompts[r % len(prompts)]
and strengths[r % len(strengths)]: prompts and strengths take turns, one per repeat.

`lmdm delay in.wav -o out.wav --prompt ... --strength 0.6` runs it on a file (lmdm/delay.py, the
command); this module is the delay line the session plays.
"""

from __future__ import annotations

import math
from typing import Sequence

import attrs
import numpy as np
import torch

from lmdm.audio.limiter import soft_limit
from lmdm.codec.base import Codec
from lmdm.conditioning.clock import check_tempo
from lmdm.conditioning.jam import Timeline
from lmdm.conditioning.text import Conditioning
from lmdm_dsl.values import MAX_DELAY_TURNS, MAX_PROMPT_CHARS  # the language's limits, one home

FADE_SECONDS = 0.02  # output gains (delay mix, mix_input) move over this long at a block start: no click
MAX_DELAY_BLOCKS = 64.0  # 128 s at 2 s blocks: the input audio the session keeps for the delay; the least is a latent frame (check_delay_frames)
EPS = 1e-9


def _level(what: str):
    def check(instance, attribute, value) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise ValueError(f"delay {what} must be a number from 0 to 1, got {value!r}")

    return check


def _strengths(value) -> tuple[float, ...]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (float(value),)
    try:
        out = tuple(value)
    except TypeError:
        raise ValueError(f"delay strength must be a number from 0 to 1 (or a list of them, one per repeat), got {value!r}") from None
    return out


def _check_strengths(instance, attribute, value: tuple) -> None:
    if not 1 <= len(value) <= MAX_DELAY_TURNS:
        raise ValueError(f"delay strength: give 1 to {MAX_DELAY_TURNS} values (one per repeat, in turn), got {len(value)}")
    for s in value:
        _level("strength")(instance, attribute, s)


def _check_time(instance, attribute, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 < value <= MAX_DELAY_BLOCKS:
        raise ValueError(f"delay time must be more than 0 and at most {MAX_DELAY_BLOCKS:g} blocks, got {value!r}")


def _check_prompts(instance, attribute, value: tuple) -> None:
    if len(value) > MAX_DELAY_TURNS:
        raise ValueError(f"a delay takes turns between at most {MAX_DELAY_TURNS} prompts, got {len(value)}")
    for p in value:
        if not isinstance(p, str) or not p.strip() or len(p) > MAX_PROMPT_CHARS:
            raise ValueError(f"delay prompts must be non-empty texts of at most {MAX_PROMPT_CHARS} characters, got {p!r:.80}")


@attrs.frozen
class DelaySettings:
    time_blocks: float = attrs.field(converter=float, validator=_check_time)
    strength: tuple[float, ...] = attrs.field(default=(0.5,), converter=_strengths, validator=_check_strengths)
    feedback: float = attrs.field(default=0.3, validator=_level("feedback"))
    mix: float = attrs.field(default=0.5, validator=_level("mix"))
    prompts: tuple[str, ...] = attrs.field(default=(), converter=tuple, validator=_check_prompts)  # () = the session's prompt

    def delay_samples(self, block_samples: int) -> int:
        return max(1, round(self.time_blocks * block_samples))

    def repeat(self, block: int, first_block: int) -> int:
        """Which repeat block `block` belongs to (0 = the first delay period after the delay started)."""
        return max(0, math.floor((block - first_block) / self.time_blocks + EPS))

    def strength_at(self, repeat: int) -> float:
        return self.strength[repeat % len(self.strength)]

    def prompt_at(self, repeat: int) -> str | None:
        return self.prompts[repeat % len(self.prompts)] if self.prompts else None

    def describe(self) -> str:
        s = "/".join(f"{x:g}" for x in self.strength)
        p = "" if not self.prompts else " prompt " + "/".join(repr(x) for x in self.prompts)
        return f"{self.time_blocks:g} blocks strength {s} feedback {self.feedback:g} mix {self.mix:g}{p}"


def check_delay_frames(settings: DelaySettings, block_frames: int) -> DelaySettings:
    """``settings``, or ValueError when its time is shorter than one latent frame (1 / block_frames blocks):
    the shortest time the model can tell apart, and a bound that keeps the repeat count finite."""
    shortest = 1.0 / block_frames
    if settings.time_blocks < shortest * (1 - EPS):
        raise ValueError(
            f"delay time must be from one latent frame ({shortest:.3g} blocks) to {MAX_DELAY_BLOCKS:g} blocks, "
            f"got {settings.time_blocks!r}"
        )
    return settings


def delay_settings(
    blocks: object = None, *, beats: float | None = None, bpm: float = 120.0, block_seconds: float = 2.0,
    strength: float | Sequence[float] = 0.5, feedback: float = 0.3, mix: float = 0.5, prompts: Sequence[str] = (),
) -> DelaySettings:
    """From keyword arguments, or from a `lmdm_dsl.DelaySpec`-like value (has `time_blocks`) as `blocks`."""
    if hasattr(blocks, "time_blocks"):
        spec = blocks
        return DelaySettings(spec.time_blocks, spec.strength, spec.feedback, spec.mix, tuple(spec.prompts or ()))
    if isinstance(prompts, str):
        prompts = (prompts,)
    if (blocks is None) == (beats is None):
        raise ValueError("give the delay time in blocks (set_delay(2)) or in beats (set_delay(beats=3, bpm=120))")
    if beats is not None:
        bpm = check_tempo(bpm)
        if isinstance(beats, bool) or not isinstance(beats, (int, float)) or not math.isfinite(beats):
            raise ValueError(f"beats must be a number, got {beats!r}")
        blocks = beats * 60.0 / bpm / block_seconds
    if isinstance(blocks, bool) or not isinstance(blocks, (int, float)):
        raise ValueError(f"the delay time must be a number of blocks, got {blocks!r}")
    return DelaySettings(blocks, strength, feedback, mix, tuple(prompts))


def mix_out(wet: np.ndarray, dry: np.ndarray | None, wet_gain: np.ndarray | float, dry_gain: np.ndarray | float) -> np.ndarray:
    """wet * wet_gain (+ dry * dry_gain): gains are scalars or per-sample ramps [n, 1]."""
    out = wet * wet_gain
    if dry is not None:
        out = out + dry * dry_gain
    return out.astype(np.float32)


def gain_ramp(start: float, end: float, n: int, fade: int) -> np.ndarray:
    """[n, 1]: from `start` to `end` over the first `fade` samples, then `end` (no click on a change)."""
    g = np.full(n, end, dtype=np.float64)
    k = min(fade, n)
    if k and start != end:
        g[:k] = start + (end - start) * np.arange(1, k + 1) / k
    return g[:, None].astype(np.float32)


@attrs.frozen(eq=False)
class DelayInput:
    """What the delay gives the model for one block: SDEdit's start and strength, the prompt of this
    repeat (None: the session's) and the wet gain of the output."""

    init: torch.Tensor  # [1, D, B]: the delay line's latents
    strength: float
    cond: Conditioning | None
    mix: float


class DelayLine:
    """The delay's state in a session: settings, where it started, its wet audio, the line's encoder
    and the repeats' prompts, encoded (``conds``: prompt text -> Conditioning)."""

    def __init__(self, codec: Codec, settings: DelaySettings, first_block: int, channels: int,
                 conds: dict[str, Conditioning] | None = None):
        self.settings = settings
        self.first_block = first_block
        self.encoder = codec.stream_encoder()
        self.wet = Timeline(channels)
        self.channels = channels
        self.conds = dict(conds or {})

    def retime(self, settings: DelaySettings, conds: dict[str, Conditioning] | None = None) -> None:
        """New settings for the running delay (its line, encoder and wet history go on)."""
        self.settings = settings
        self.conds = dict(conds or {})

    def block_input(self, block: int, block_samples: int, player: Timeline, frames: int) -> DelayInput:
        """The model's input for block `block`: the delay line encoded, with this repeat's strength and prompt."""
        d = self.settings
        repeat = d.repeat(block, self.first_block)
        prompt = d.prompt_at(repeat)
        init = self.encode(self.line(block, block_samples, player), frames)
        return DelayInput(init, d.strength_at(repeat), None if prompt is None else self.conds[prompt], d.mix)

    def line(self, block: int, block_samples: int, player: Timeline) -> np.ndarray:
        """The delay line's audio over block `block` [block_samples, channels]."""
        t0 = block * block_samples - self.settings.delay_samples(block_samples)
        return player.read(t0, block_samples) + self.settings.feedback * self.wet.read(t0, block_samples)

    @torch.no_grad()
    def encode(self, line: np.ndarray, frames: int) -> torch.Tensor:
        """The line's latents [1, D, frames] (the stream encoder runs on, block after block)."""
        z = self.encoder.push(torch.from_numpy(np.ascontiguousarray(line.T))[None])
        if z.shape[2] != frames:  # only if a codec emits frames late; keep the block's length
            z = torch.nn.functional.pad(z, (max(0, frames - z.shape[2]), 0))[:, :, -frames:]
        return z.to(torch.float32)

    def record(self, block: int, block_samples: int, wet: np.ndarray, keep_samples: int | None = None) -> None:
        """The block's wet audio joins the feedback history; older than ``keep_samples`` (default: the
        delay time plus a block) is dropped."""
        keep = self.settings.delay_samples(block_samples) + block_samples if keep_samples is None else keep_samples
        self.wet.write(block * block_samples, wet)
        self.wet.drop_before((block + 1) * block_samples - keep)


class OutputMix:
    """A session's output, block by block: the model's audio (wet) and the player's (dry), each gain
    gliding from the last block's over ``FADE_SECONDS`` (no click on a change), soft-limited so the
    output never reaches full scale (lmdm/audio/limiter.py). ``limited`` counts the samples the
    limiter turned down."""

    def __init__(self, sample_rate: int):
        self.fade = round(FADE_SECONDS * sample_rate)
        self.gains = (1.0, 0.0)  # (wet, dry) at the end of the last block
        self.limited = 0

    @property
    def needs_dry(self) -> bool:
        """Does the next block need the player's audio even at dry gain 0 (a fade out still running)?"""
        return self.gains[1] != 0.0

    def mix(self, wet: np.ndarray, dry: np.ndarray | None, wet_gain: float, dry_gain: float) -> np.ndarray:
        """[n, channels] float32: wet * its ramp (+ dry * its ramp), limited."""
        n = len(wet)
        out = mix_out(wet, dry, gain_ramp(self.gains[0], wet_gain, n, self.fade), gain_ramp(self.gains[1], dry_gain, n, self.fade))
        out, limited = soft_limit(out)
        self.limited += limited
        self.gains = (wet_gain, dry_gain)
        return out
