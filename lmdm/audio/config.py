"""The audio engine's value types: its settings (`EngineConfig`) and what it counts (`EngineStats`,
with PortAudio's status flags one by one in `StreamFlags`). Frozen attrs values: the engine
(lmdm/audio/engine.py) reads the config and hands out a fresh `EngineStats` on each `stats` call.
"""

from __future__ import annotations

from typing import Any

import attrs

_positive = attrs.validators.gt(0)
_non_negative = attrs.validators.ge(0)


# a spliced block's sampler steps at most: half of the bundled model's 8, so a change is heard ~100 ms
# sooner; its streams in 4 steps score as well as in 8 (docs/play_with_others.md, "Latency")
SPLICE_STEPS = 4


@attrs.frozen
class EngineConfig:
    model_rate: int = attrs.field(default=16000, validator=_positive)
    channels: int = attrs.field(default=1, validator=_positive)  # output channels (= model channels)
    device: Any = None  # sounddevice device: index, name substring, (in, out) pair, or None = default
    device_rate: int | None = None  # None: the device's default rate (JACK: the server's rate)
    blocksize: int = attrs.field(default=0, validator=_non_negative)  # 0: let the host choose
    latency: str | float = "high"  # PortAudio's latency hint; the ring dominates latency anyway
    input_channels: int = attrs.field(default=0, validator=_non_negative)  # > 0: duplex stream
    ahead_blocks: float = attrs.field(default=1.0, validator=_positive)  # generate below this fill
    buffer_seconds: float = attrs.field(default=8.0, validator=_positive)  # output ring capacity
    input_seconds: float = attrs.field(default=10.0, validator=_positive)  # input ring capacity
    fade_ms: float = attrs.field(default=5.0, validator=_non_negative)  # underrun fade length
    poll_s: float = attrs.field(default=0.01, validator=_positive)  # generation thread idle sleep
    backoff_s: float = attrs.field(default=0.1, validator=_non_negative)  # sleep after a failure
    join_timeout_s: float = attrs.field(default=5.0, validator=_positive)
    stall_s: float = attrs.field(default=1.0, validator=_positive)  # no callback this long: device lost
    first_callback_s: float = attrs.field(default=5.0, validator=_positive)  # ... before the first one
    reopen_s: float = attrs.field(default=2.0, validator=_positive)  # first reopen try; doubles up to:
    reopen_max_s: float = attrs.field(default=30.0, validator=_positive)
    watch_s: float = attrs.field(default=0.05, validator=_positive)  # watchdog / pacer tick
    close_timeout_s: float = attrs.field(default=2.0, validator=_positive)  # wait this long for PortAudio to close
    splice: bool = False  # a queued change is spliced into the audio already made (lmdm/audio/feeder.py; needs a splicer)
    splice_margin_ms: float = attrs.field(default=150.0, validator=_positive)  # ... this far ahead of the play position
    splice_steps: int | None = attrs.field(  # ... made again in at most this many sampler steps (None: the session's)
        default=SPLICE_STEPS, validator=attrs.validators.optional([attrs.validators.instance_of(int), _positive]))


# sounddevice.CallbackFlags attributes, in the order StreamFlags holds them
FLAG_NAMES = ("output_underflow", "output_overflow", "input_underflow", "input_overflow", "priming_output")


@attrs.frozen
class StreamFlags:
    """How many callbacks PortAudio flagged with each status flag. JACK reports each of its xruns
    (a late cycle, anywhere in the graph) as input overflow *and* output underflow."""

    output_underflow: int = 0  # the device played silence: the callback was late (audible)
    output_overflow: int = 0
    input_underflow: int = 0
    input_overflow: int = 0  # captured input was lost before the callback (PortAudio's, not our ring)
    priming_output: int = 0  # PortAudio primed the output buffers: not a dropout

    def others(self) -> str:
        """The flags other than output underflow that were seen, e.g. 'input_overflow 2'."""
        return ", ".join(f"{name} {getattr(self, name)}" for name in FLAG_NAMES[1:] if getattr(self, name))


@attrs.frozen
class EngineStats:
    running: bool
    device_rate: int
    buffer_seconds: float  # audio waiting in the output ring
    callbacks: int
    frames_played: int  # device-rate frames taken from the ring
    underruns: int  # times the ring ran dry during playback (each faded out, then back in)
    starved_frames: int  # silent frames output because the ring was dry
    last_callback_interval: float  # seconds between the last two callbacks
    blocks_generated: int
    producer_errors: int
    xruns: int  # callbacks that PortAudio flagged with any status flag (see flags)
    callback_errors: int  # exceptions caught inside the callback (should stay 0)
    input_overflows: int  # callbacks whose captured frames did not fit the input ring
    flags: StreamFlags = StreamFlags()  # the xruns, flag by flag
    device_lost: bool = False  # no device plays now: the wall clock paces generation
    device_losses: int = 0  # times the device was lost or stalled
    reopens: int = 0  # times a lost device was reopened
    paced_frames: int = 0  # device-rate frames taken out of the ring unheard while no device played
    splices: int = 0  # blocks made again with a change and spliced into the audio already made
    late_splices: int = 0  # ... made too late for the block they were for (its end played as it was)

    @property
    def output_underflows(self) -> int:
        """Callbacks PortAudio says came too late for the device (it played silence)."""
        return self.flags.output_underflow

    def summary(self) -> str:
        """One line for a status display."""
        others = self.flags.others()
        return (
            f"buffer {self.buffer_seconds:.2f} s, {self.blocks_generated} blocks, "
            f"{self.underruns} underruns, {self.producer_errors} producer errors, "
            f"{self.output_underflows} output underflows" + (f" (other PortAudio flags: {others})" if others else "")
            + f", callback every {self.last_callback_interval * 1000:.1f} ms"
            + (f", {self.splices} changes spliced in" if self.splices else "")
            + (f" ({self.late_splices} late)" if self.late_splices else "")
            + (", NO DEVICE (reopening)" if self.device_lost else "")
        )
