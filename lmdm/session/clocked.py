"""The stream's clock and the time-aligned controls read against it, of a LiveSession.

`ClockControls` is the part of `LiveSession`'s API (lmdm/session/live_session.py, the façade that
mixes it in) that sets the tempo, meter and bar lines (`set_tempo`, a prompt naming a tempo does
too), the clock's beat as the rhythm input (`set_clock_beat`) and the sketches (`set_sketch`).
Each setter validates at once and queues its change (`_later`); `BlockInputs`
(lmdm/session/inputs.py) holds what they set and makes each block's sketch and clock channels.
"""

from __future__ import annotations

from collections.abc import Callable

from lmdm.conditioning.clock import check_tempo
from lmdm.session.inputs import BlockInputs
from lmdm.session.values import UNSET, check_bool, check_grid, check_meter, sketch_tracks
from lmdm_dsl.clock import Clock


class ClockControls:
    """clock, tempo_asked, set_tempo, set_clock_beat and set_sketch of `LiveSession`, which provides
    the state and the methods named below."""

    _inputs: BlockInputs
    block_index: int
    frame_rate: float
    _later: Callable[[Callable[[], None]], None]
    _require: Callable[[str], None]

    @property
    def clock(self) -> Clock:
        """The stream's tempo, meter and the block where its bar 1 starts, a fraction of a block allowed
        (lmdm_dsl.clock.Clock)."""
        return self._inputs.clock

    @property
    def tempo_asked(self) -> bool:
        """Whether a tempo was asked (a prompt naming one, set_tempo, the language's `tempo`): only
        then does a model with a clock input hear the clock; before, it plays its style's own tempo."""
        return self._inputs.tempo_asked

    def set_tempo(self, bpm: float, *, beats_per_bar: int | None = None, at_block: int | None = None,
                  origin: float | None = None) -> None:
        """The stream's tempo from the next block on (or from `at_block`, a block not yet made):
        bar 1 starts there. Sketches, the delay in beats and the language's bars follow it, and a
        model with a clock input is conditioned on it every block. A prompt naming a tempo
        ("at 96 bpm", "96bpm", "tempo 96") sets it too.

        `origin` instead puts bar 1 anywhere, in blocks of stream time, a fraction of a block
        allowed, before the next block or after it (bars before it count back): a grid that follows
        another clock's bar lines, as Ableton Link's are heard (lmdm/sync/link.py). The tempo still
        applies from the next block."""
        bpm = check_tempo(bpm)
        check_meter(beats_per_bar)
        origin = check_grid(at_block, origin)
        self._later(lambda: self._inputs.retempo(bpm, beats_per_bar, self.block_index, at_block, origin))

    def set_clock_beat(self, on: bool) -> None:
        """Whether the clock's beat is the rhythm sketch while a tempo is asked and no rhythm sketch
        is given (on by default; a sketch model follows it in and out of a style's usual tempo)."""
        on = check_bool("clock_beat", on)
        self._later(lambda: setattr(self._inputs, "clock_beat", on))

    def set_sketch(
        self,
        kind: object = UNSET,
        source: object = UNSET,
        *,
        melody: object = UNSET,
        rhythm: object = UNSET,
        loudness: object = UNSET,
        bpm: float | None = None,
        beats_per_bar: int | None = None,
    ) -> None:
        """Time-aligned controls the model follows, from the next block on; each loops.

            set_sketch(melody="c4 e4 g4 ~ <a4 b4>", rhythm="x ~ x x", bpm=124)  # mini-notation, 1 cycle = 1 bar
            set_sketch(loudness=np.linspace(0.2, 1, 100))      # one value per latent frame
            set_sketch(melody=[(0.0, 0.5, 60), (0.5, 0.5, 64)])  # notes (start s, duration s, MIDI)
            set_sketch(sketch_from_audio(audio, sr, session.frame_rate))  # a hummed line: all three
            set_sketch("melody", frames)   # the language's form; set_sketch("melody", None): that one off
            set_sketch(None)               # all off

        A source given as None turns its control off; controls not named keep their state. Values:
        melody MIDI 0..127 (0 = rest), rhythm onset strength 0..1, loudness level 0..1 (0 = -60 dBFS).
        Arrays and notes loop over their length, counted from the block where the sketch takes
        effect. Patterns are read at the stream's clock exactly as the language's `sketch`
        statements are: its tempo and bar lines, following tempo changes; with `bpm` (or
        `beats_per_bar`) at that tempo (meter) instead, bar 0 where the sketch takes effect. While
        the model hears a player (jamming) the sketch is not given: the model was trained with
        sketches of the whole mix only, never with a player.
        """
        self._require("sketch")
        tracks = sketch_tracks(kind, source, melody, rhythm, loudness, frame_rate=self.frame_rate, bpm=bpm, beats_per_bar=beats_per_bar)
        self._later(lambda: self._inputs.set_sketches(tracks, self.block_index))
