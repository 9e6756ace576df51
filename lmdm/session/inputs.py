"""BlockInputs: what a session gives the model each block besides the prompt and the sampler knobs.

State (changed only between blocks, by the session's queued changes; rewound with the session):

    clock, tempo_asked    the stream's one clock (lmdm_dsl.clock.Clock), and whether a tempo was asked
    clock_beat            whether the clock's beat stands in as the rhythm sketch
    sketches              kind -> (track, block it started at)
    jam, follow           whether and how jamming follows the player ("key", "beat", "listen")

and, shared and never rewound, the player's input (PlayerInput, lmdm/conditioning/jam.py).

Per block n the session asks, in this order (LiveSession._make_block):

    accomp(n, stream, delaying)      -> the accomp channels over the stream's history (the player heard)
    followed(n, delaying)            -> the sketches the player's beat and notes give, when following by sketch
    target_add(n, listening, followed) -> the block's sketch + clock channels [1, add_dim, block_frames]:
        sketches in force, those followed in their place, the clock's beat as the rhythm where neither
        gives one (clock_rhythm), the clock's tempo and phase (clock_add)

and passes the tensors to BlockStream.generate (lmdm/stream.py).
"""

from __future__ import annotations

import numpy as np
import torch

from lmdm.conditioning.clock import CLOCK_NAME, beat_onsets, block_clock_features
from lmdm.conditioning.jam import PlayerInput
from lmdm.conditioning.sketch_sources import ArrayTrack, Track, sketch_add
from lmdm.model.config import ModelConfig
from lmdm.stream import BlockStream
from lmdm_dsl.clock import Clock


class BlockInputs:
    """The clock, sketches and jam mode a session is in, and the per-block tensors made from them.

    `sketch` / `clock_input`: the model has the sketch channels / the clock input (LiveSession.supports)."""

    def __init__(self, config: ModelConfig, player: PlayerInput, *, sketch: bool, clock_input: bool,
                 clock: Clock, tempo_asked: bool, clock_beat: bool, jam: bool, follow: str):
        self.config = config
        self.player = player  # shared with the session: never rewound
        self.sketch, self.clock_input = sketch, clock_input
        # the stream's one clock: sketches, the delay in beats and the language's bars read it;
        # a model with a clock input hears it once a tempo is asked (prompt, set_tempo, `tempo`)
        self.clock = clock
        self.tempo_asked = tempo_asked
        # with a tempo asked and no rhythm sketch, a sketch model hears the clock's beat as its rhythm
        self.clock_beat = clock_beat
        self.sketches: dict[str, tuple[Track, int]] = {}  # kind -> (track, block it started at)
        self.jam, self.follow = jam, follow

    # changes (applied between blocks) -------------------------------------------------------
    def retempo(self, bpm: float, beats_per_bar: int | None, block: int, at_block: int | None = None,
                origin: float | None = None) -> None:
        """A new clock from `block` (the next block; or `at_block`, or bar 1 at `origin`)."""
        if origin is None:
            origin = block if at_block is None else max(at_block, block)
        meter = self.clock.beats_per_bar if beats_per_bar is None else beats_per_bar
        self.clock = Clock(bpm=bpm, beats_per_bar=meter, origin_block=origin)
        self.tempo_asked = True

    def set_sketches(self, tracks: dict[str, Track | None], block: int) -> None:
        """Start each track at `block`; None turns its kind off."""
        for name, track in tracks.items():
            if track is None:
                self.sketches.pop(name, None)
            else:
                self.sketches[name] = (track, block)

    # the block's tensors ---------------------------------------------------------------------
    def clock_add(self, block: int) -> torch.Tensor | None:
        """The clock channels [1, CLOCK_DIM, B] of `block`, or None (no clock input, or no tempo asked)."""
        if not (self.tempo_asked and self.clock_input):
            return None
        c, cfg = self.clock, self.config
        return block_clock_features(c.bpm, c.beats_per_bar, c.origin_block, block, cfg.block_frames, cfg.frame_rate)

    def clock_rhythm(self, block: int) -> np.ndarray | None:
        """The clock's beat [B] as `block`'s rhythm sketch, or None (off, no tempo asked, no sketch input)."""
        if not (self.clock_beat and self.tempo_asked and self.sketch):
            return None
        c, cfg = self.clock, self.config
        return beat_onsets(c.bpm, c.origin_block, block, cfg.block_frames, cfg.frame_rate)

    def accomp(self, block: int, stream: BlockStream, delaying: bool) -> torch.Tensor | None:
        """The accomp channels for the stream's history before `block` (zeros unless jamming);
        `delaying`: a delay is on (the stream is the delay line, not an accompaniment)."""
        if stream.accomp is None:
            return None
        n = stream.history.shape[2]
        if self.jam and self.follow == "listen" and not delaying and self.player.encoded > 0:
            return self.player.accomp(block, n)
        return torch.zeros(1, 1 + self.config.latent_dim, n)

    def followed(self, block: int, delaying: bool) -> dict[str, np.ndarray]:
        """Jamming by sketch ("key" or "beat"): the sketches of `block` the player's input gives
        (PlayerInput.followed); {} when not following by sketch."""
        if not (self.jam and self.follow in ("key", "beat") and not delaying and self.sketch):
            return {}
        return self.player.followed(block, melody=self.follow == "key")

    def target_add(self, block: int, listening: bool, followed: dict[str, np.ndarray]) -> torch.Tensor | None:
        """The block's sketch and clock channels: the sketches in force, with those followed from the
        player (its beat as the rhythm, its notes as the melody) in their place, and the clock's beat
        as the rhythm where neither gives one and a tempo is asked; no sketch while the model hears
        the player (jamming was trained without)."""
        tracks = {} if listening else dict(self.sketches)
        for kind, frames in followed.items():
            tracks[kind] = (ArrayTrack(frames), block)
        beat = None if listening else self.clock_rhythm(block)
        if beat is not None and "rhythm" not in tracks:
            tracks["rhythm"] = (ArrayTrack(beat), block)
        clock = self.clock_add(block)
        if not tracks and clock is None:
            return None
        cfg = self.config
        target = torch.zeros(1, cfg.add_dim, cfg.block_frames)
        if tracks:
            target[:, cfg.add_slice("melody").start : cfg.add_slice("loudness").stop] = sketch_add(
                tracks, block, cfg.block_frames, clock=self.clock, block_seconds=cfg.block_seconds)
        if clock is not None:
            target[:, cfg.add_slice(CLOCK_NAME)] = clock
        return target
