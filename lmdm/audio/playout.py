"""What the output callback does, as plain code that runs without a device.

``Playout.fill(out, now)`` is the whole real-time path: copy frames from the ring into the
device buffer, and handle running dry gracefully. It never waits and never raises on an empty
ring; in steady state it allocates nothing.

Running dry (an *underrun*): normal playback keeps ``fade_frames`` of audio in reserve, so when
the ring holds less than one callback plus that reserve, the callback plays what is there with a
linear fade-out over its last ``fade_frames`` frames and then outputs silence. Playback resumes
once a callback plus the reserve is available again, with a linear fade-in. Because the ring
holds one continuous stream, resuming continues exactly where the fade-out stopped.

Silence before the very first audio is *priming*, not an underrun, and is not counted.
"""

from __future__ import annotations

import numpy as np

from lmdm.audio.ring import RingBuffer


class Playout:
    def __init__(self, ring: RingBuffer, fade_frames: int = 80) -> None:
        self.ring = ring
        self.fade_frames = max(1, int(fade_frames))
        self._ramp = (np.arange(1, self.fade_frames + 1, dtype=np.float32) / self.fade_frames)[:, None]
        self.playing = False  # False while priming and after running dry
        self._primed = False  # True once any audio has been played
        self._fade_pos = 0  # fade-in progress, 0 .. fade_frames (full gain)
        self._last_time: float | None = None
        self.callbacks = 0
        self.frames_played = 0  # frames taken from the ring and sent to the device
        self.starved_frames = 0  # frames of silence output because the ring ran dry
        self.underruns = 0  # times playback ran dry
        self.last_interval = 0.0  # seconds between the last two callbacks

    def fill(self, out: np.ndarray, now: float) -> None:
        """Fill ``out`` [frames, channels] (the device buffer) at clock time ``now``."""
        if self._last_time is not None:
            self.last_interval = now - self._last_time
        self._last_time = now
        self.callbacks += 1
        frames = len(out)
        enough = frames + self.fade_frames
        if not self.playing:
            if self.ring.fill < enough:
                out.fill(0.0)
                if self._primed:
                    self.starved_frames += frames
                return
            self.playing, self._primed, self._fade_pos = True, True, 0
        if self.ring.fill >= enough:
            self.ring.read_into(out)
            self._fade_in(out)
            self.frames_played += frames
            return
        got = self.ring.read_into(out)
        self._fade_in(out[:got])
        self._fade_out(out[:got])
        out[got:] = 0.0
        self.frames_played += got
        self.starved_frames += frames - got
        self.underruns += 1
        self.playing = False

    def _fade_in(self, frames: np.ndarray) -> None:
        if self._fade_pos >= self.fade_frames:
            return
        count = min(self.fade_frames - self._fade_pos, len(frames))
        frames[:count] *= self._ramp[self._fade_pos : self._fade_pos + count]
        self._fade_pos += count

    def _fade_out(self, frames: np.ndarray) -> None:
        count = min(self.fade_frames, len(frames))
        if count == 0:
            return
        # count + 1 points from 1 to 0, dropping the leading 1: the last frame gets gain 0
        ramp = np.linspace(1.0, 0.0, count + 1, dtype=np.float32)[1:, None]
        frames[len(frames) - count :] *= ramp


class Pacer:
    """The wall clock in place of a lost device: takes frames out of the ring at ``rate`` frames a
    second, so the generation thread (and the recording) keeps going at real-time pace while no
    device plays. Runs off the real-time path (the engine's watchdog thread); it allocates."""

    def __init__(self, ring: RingBuffer, rate: int) -> None:
        self.ring = ring
        self.rate = rate
        self.frames = 0  # frames taken out of the ring unheard
        self._last: float | None = None
        self._owed = 0.0  # fractional frames carried to the next tick

    def start(self, now: float) -> None:
        self._last, self._owed = now, 0.0

    def advance(self, now: float) -> int:
        """Drop the frames the device would have played since the last call; returns how many."""
        if self._last is None:
            self.start(now)
        self._owed += max(0.0, now - self._last) * self.rate
        self._last = now
        due = int(self._owed)
        self._owed -= due
        taken = len(self.ring.read(due))
        self.frames += taken
        return taken
