"""The generation side of the engine: keep the ring ahead of the audio callback.

``Feeder.step()`` does one unit of work and says what happened; ``Feeder.run(stop)`` loops it on
the generation thread. Tests call ``step()`` directly, with no thread and no device.

Each step: finish writing the previous block if the ring was full; otherwise, if the ring holds
less than ``ahead_blocks`` blocks, call the producer for the next block (model rate), record it,
resample it to the device rate and write it into the ring. A producer that raises, or returns
something that is not audio, is counted and reported, and called again after a back-off; the
callback meanwhile fades to silence and fades back in when audio returns.
"""

from __future__ import annotations

import enum
import logging
import threading
from typing import Callable

import numpy as np

from lmdm.audio.record import RecordError, Recorder
from lmdm.audio.resample import Resampler
from lmdm.audio.ring import RingBuffer

log = logging.getLogger(__name__)

Producer = Callable[[], np.ndarray]
ErrorHandler = Callable[[BaseException], None]


class Step(enum.Enum):
    GENERATED = "generated"  # a new block went into the ring (or is being written)
    WAITING = "waiting"  # the ring is full enough, or still draining the last block
    FAILED = "failed"  # the producer raised or returned something unusable


def as_frames(block: object, channels: int) -> np.ndarray:
    """A producer's block as float32 [frames, channels], non-finite samples zeroed, clipped to
    +-1 (to protect ears and speakers); ValueError with a clear message otherwise."""
    if block is None:
        raise ValueError("producer returned None instead of an audio block")
    frames = np.asarray(block, dtype=np.float32)
    if frames.ndim == 1 and channels == 1:
        frames = frames[:, None]
    if frames.ndim != 2 or frames.shape[1] != channels:
        raise ValueError(f"producer returned shape {list(frames.shape)}, expected [frames, {channels}]")
    if len(frames) == 0:
        raise ValueError("producer returned an empty block")
    frames = np.nan_to_num(frames, nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(frames, -1.0, 1.0, out=frames)


class Feeder:
    def __init__(
        self,
        producer: Producer,
        ring: RingBuffer,
        resampler: Resampler,
        *,
        ahead_blocks: float = 1.0,
        on_error: ErrorHandler | None = None,
    ) -> None:
        self.producer = producer
        self.ring = ring
        self.resampler = resampler
        self.ahead_blocks = ahead_blocks
        self.on_error = on_error
        self.blocks = 0  # blocks produced successfully
        self.errors = 0  # producer failures
        self.block_frames = 0  # length of the last block at the device rate
        self._pending = np.zeros((0, ring.channels), dtype=np.float32)
        self._failing = False
        self._recorder: Recorder | None = None
        self._recorder_lock = threading.Lock()

    @property
    def target_frames(self) -> int:
        """Generate when the ring holds fewer frames than this."""
        return max(1, int(self.ahead_blocks * self.block_frames))

    def set_recorder(self, recorder: Recorder | None) -> Recorder | None:
        """Record every block from now on into ``recorder`` (None: stop); returns the old one."""
        with self._recorder_lock:
            old, self._recorder = self._recorder, recorder
        return old

    def step(self) -> Step:
        if len(self._pending):
            written = self.ring.write(self._pending)
            self._pending = self._pending[written:]
            return Step.WAITING if len(self._pending) else Step.GENERATED
        if self.ring.fill >= self.target_frames:
            return Step.WAITING
        try:
            frames = as_frames(self.producer(), self.resampler.channels)
        except Exception as exc:  # the producer is user code: anything can happen
            self._report(exc)
            return Step.FAILED
        self._failing = False
        self.blocks += 1
        self._record(frames)
        out = self.resampler.process(frames)
        self.block_frames = len(out)
        written = self.ring.write(out)
        self._pending = out[written:]
        return Step.GENERATED

    def run(self, stop: threading.Event, poll_s: float = 0.01, backoff_s: float = 0.1) -> None:
        """Step until ``stop`` is set; sleeps ``poll_s`` when waiting, ``backoff_s`` after a failure."""
        while not stop.is_set():
            state = self.step()
            if state is Step.WAITING:
                stop.wait(poll_s)
            elif state is Step.FAILED:
                stop.wait(backoff_s)

    def _record(self, frames: np.ndarray) -> None:
        with self._recorder_lock:
            if self._recorder is None:
                return
            try:
                self._recorder.write(frames)
            except RecordError as exc:
                log.error("recording stopped: %s", exc)
                broken, self._recorder = self._recorder, None
                try:
                    broken.stop()
                except RecordError:
                    pass

    def _report(self, exc: BaseException) -> None:
        self.errors += 1
        # a traceback for the first failure in a row; one line for each repeat
        log.warning("producer failed (%d so far): %s", self.errors, exc, exc_info=not self._failing)
        self._failing = True
        if self.on_error is not None:
            try:
                self.on_error(exc)
            except Exception:
                log.exception("the on_error handler raised")
