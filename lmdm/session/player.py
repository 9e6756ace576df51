"""The player's side of a LiveSession: its input (jamming), mixing it back, and the generative delay.

`PlayerControls` is the part of `LiveSession`'s API that takes a player in (lmdm/session/live_session.py
is the façade that mixes it in): each setter validates at once and queues its change (`_later`), as
every setter does; what they set is used at block time by `PlayerInput` (lmdm/conditioning/jam.py),
`BlockInputs` (lmdm/session/inputs.py) and the `DelayLine` (lmdm/conditioning/delay.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np

from lmdm.conditioning.delay import DelayLine, DelaySettings, check_delay_frames, delay_settings
from lmdm.conditioning.jam import PlayerInput
from lmdm.conditioning.text import Conditioning
from lmdm.model.lmdm import LMDM
from lmdm.model.placement import HostCodec
from lmdm.session.inputs import BlockInputs
from lmdm.session.values import UNSET, check_bool, check_follow, input_frames, normalise_prompt


class PlayerControls:
    """feed_input, set_jam, set_mix_input, set_delay and delay_settings of `LiveSession`, which
    provides the state and the methods named below."""

    model: LMDM
    codec: HostCodec
    _lock: threading.RLock
    _inbox: list[tuple[np.ndarray, int | None]]
    _inputs: BlockInputs
    _player: PlayerInput
    _delay: DelayLine | None
    _mix_input: bool
    channels: int
    block_index: int
    block_seconds: float
    _later: Callable[[Callable[[], None]], None]
    _require: Callable[[str], None]
    _encode: Callable[[tuple[tuple[str, float], ...]], Conditioning]

    def feed_input(self, audio: np.ndarray, sample_rate: int | None = None) -> None:
        """The player's audio, float32 [n] or [n, channels], any length, appended to the input timeline.

        Sample 0 of the input is sample 0 of block 0. Audio at another `sample_rate` (any whole rate
        from 8 to 384 kHz, odd ones too) is resampled (lmdm/audio/resample.py); any channel count up
        to MAX_INPUT_CHANNELS is mixed to the model's; NaN/Inf become 0. A bad rate, shape or channel
        count is a one-line ValueError, raised here, never later in the generating thread. Cheap: the
        audio is queued and taken in (resampled, encoded by the codec's stream encoder) at the start of
        the next block. When block n is generated the model uses only input frames < n B - B (what it
        has heard, at least a block old, as trained). Any thread may call this.
        """
        frames, rate = input_frames(audio, sample_rate, self.channels)
        with self._lock:
            self._inbox.append((frames, rate))

    def set_jam(self, on: bool, follow: str | None = None) -> None:
        """Whether the model follows the fed input (accompanies it), and how. On by default.

        follow "key" (the default for models with sketch inputs): as "beat", and the notes the
        player plays most, one per beat of its grid, as each block's melody sketch
        (lmdm/conditioning/key.py); the player's melody replaces a melody sketch in force while it
        is pitched. "beat": the player's beat, tracked on the heard input, carried into each block
        as its rhythm sketch (lmdm/conditioning/beat.py); melody and loudness sketches stay in force.
        "listen": the model hears the player's codec latents through its accomp input (sketches
        are then not given, as trained). None keeps the mode in force. docs/applications.md
        measures all three.
        """
        on = check_bool("jam", on)
        mode = self._inputs.follow if follow is None else check_follow(follow)
        if on or follow is not None:
            self._require("jam" if mode == "listen" else "sketch")

        def change() -> None:
            self._inputs.jam, self._inputs.follow = on, mode

        self._later(change)

    def set_mix_input(self, on: bool) -> None:
        """Mix the player's input back into the output (at the same stream time), or not (default).

        Offline (a file fed ahead of rendering) this gives player + accompaniment in one file. Live,
        the input of a block arrives after the block was made, so monitor the player directly
        instead (the mixed-in input would be missing)."""
        on = check_bool("mix_input", on)

        def change() -> None:
            self._mix_input = on

        self._later(change)

    # the generative delay ---------------------------------------------------------------------
    def set_delay(
        self,
        blocks: object = UNSET,
        *,
        beats: float | None = None,
        bpm: float | None = None,
        strength: float | Sequence[float] = 0.5,
        feedback: float = 0.3,
        mix: float = 0.5,
        prompts: Sequence[str] = (),
    ) -> None:
        """The generative delay: each repeat of the input is re-imagined by the model (lmdm/conditioning/delay.py).

            set_delay(2, strength=0.6, feedback=0.3, mix=0.5, prompts=["glass bells", "warm strings"])
            set_delay(beats=3, bpm=124)       # delay time in beats
            set_delay(spec)                   # a lmdm.conditioning.delay.DelaySettings or lmdm_dsl.DelaySpec
            set_delay(None)                   # off

        strength 0 returns the delayed input itself (through the codec), 1 ignores it; prompts (and
        strengths, if a list) take turns, one per repeat; none = the session's prompt. While a delay
        is on, each block of the stream is the regenerated delay line (the model does not also
        accompany the player). A delay that is on keeps its line and wet history when changed.
        Live, the delay time must cover the input latency (the input of the last block or two has
        not arrived when a block is made: that part of the line is silence).
        """
        if blocks is None and beats is None:
            settings = None
        else:
            self._require("delay")
            settings = check_delay_frames(delay_settings(
                None if blocks is UNSET else blocks, beats=beats, bpm=self._inputs.clock.bpm if bpm is None else bpm,
                block_seconds=self.block_seconds, strength=strength, feedback=feedback, mix=mix, prompts=prompts,
            ), self.model.config.block_frames)
        conds = {} if settings is None else {p: self._encode(normalise_prompt(p)) for p in settings.prompts}

        def change() -> None:
            if settings is None:
                self._delay = None
            elif self._delay is None:
                self._delay = DelayLine(self.codec, settings, self.block_index, self.channels, conds)
            else:
                self._delay.retime(settings, conds)

        self._later(change)

    @property
    def delay_settings(self) -> DelaySettings | None:
        """The delay in force (None when off)."""
        return None if self._delay is None else self._delay.settings

    @property
    def _delay_active(self) -> bool:
        """A delay is on and there is a player to delay. With no input yet (a set without a
        player, or before the first `feed_input`), the stream plays on as if the delay were off:
        a delay line of silence would silence the music."""
        return self._delay is not None and self._player.samples > 0
