"""The generation side of the engine: keep the ring ahead of the audio callback.

``Feeder.step()`` does one unit of work and says what happened; ``Feeder.run(stop)`` loops it on
the generation thread. Tests call ``step()`` directly, with no thread and no device.

Each step: finish writing the previous block if the ring was full; otherwise, if the ring holds
less than ``ahead_blocks`` blocks, call the producer for the next block (model rate), record it,
resample it to the device rate and write it into the ring. A producer that raises, or returns
something that is not audio, is counted and reported, and called again after a back-off; the
callback meanwhile fades to silence and fades back in when audio returns.

Splicing (``splicer``, a `LiveSession`): when a change is queued
and the audio already in the ring would keep it from being heard for longer than ``margin``, the
block that holds (read position + margin) is made again with the change (``splicer.rewind``; with
``splice_steps``, in that many sampler steps: sooner ready, so heard sooner) and goes into the ring
from that point on, crossfaded over ``fade`` frames; the blocks after it are
dropped and made afresh. No new splice happens before the listener has reached the last one (a
knob turned on and on splices about once per margin, not once per message).

Real time comes first: the feeder times its producer (how long a block of the session's steps
takes, and one of ``splice_steps``: slowly decaying maxima of the calls after the first, which
also builds the cache; until a block of ``splice_steps`` has been timed, a full block's time
scaled by the steps, plus a margin). A splice drops the
blocks after the remade one, so the listener then has only the rest of that block to hear while
the next one is made. When that rest, once the block is remade, would be shorter than making the
next block takes (plus ``guard``), the change goes into the next block instead, from its start
(or, with no next block in the ring yet, into the block made next, as without splicing). With
``splice_steps``, the block after a splice that left less than a full block's making time is made
in ``splice_steps`` too (``splicer.hurry``). A recording then
holds what was played: each block is recorded once it can no longer be spliced (or when
recording stops), as heard.
"""

from __future__ import annotations

import collections
import enum
import logging
import threading
import time
from typing import Any, Callable, Protocol

import attrs
import numpy as np

from lmdm.audio.record import RecordError, Recorder
from lmdm.audio.resample import Resampler
from lmdm.audio.ring import RingBuffer, crossfade

log = logging.getLogger(__name__)

Producer = Callable[[], np.ndarray]
ErrorHandler = Callable[[BaseException], None]


class Splicer(Protocol):
    """What splicing needs of the producer's session (lmdm.session.LiveSession has it)."""

    @property
    def changes_queued(self) -> bool: ...

    @property
    def rewindable(self) -> int: ...

    def rewind(self, blocks: int = 1, *, steps: int | None = None) -> None: ...

    def hurry(self, steps: int) -> None: ...

    @property
    def settings(self) -> Any: ...  # its ``steps``: the session's sampler steps


DECAY = 0.8  # a compute-time estimate keeps this much of itself per block (it jumps up at once)
COLD_MARGIN = 0.15  # untimed, a quick block counts as (its share of the steps + this) of a full block
# (the bundled model: 4 of 8 steps take 0.56 of a full block's time, 113 against 203 ms)
PRIME_FRAMES = 2048  # model-rate frames a fresh resampler hears before a remade block (soxr HQ holds back ~6 ms)


@attrs.frozen
class _Kept:
    """One of the newest blocks, for splicing: where it sits in the ring, how long it is there (device
    rate), where it starts in the stream (model rate) and its frames as heard (model rate)."""

    ring_at: int
    ring_len: int
    model_at: int
    frames: np.ndarray = attrs.field(eq=False)

    @property
    def model_end(self) -> int:
        return self.model_at + len(self.frames)


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
        splicer: Splicer | None = None,
        margin: int = 0,
        fade: int = 0,
        guard: int = 0,
        splice_steps: int | None = None,
        clock: Callable[[], float] = time.perf_counter,
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
        # splicing: (ring position, frames as heard) of the newest blocks, oldest first
        self.splicer = splicer
        self.margin, self.fade, self.guard = margin, fade, guard
        self.splice_steps = splice_steps  # the remade block's sampler steps (None: the session's)
        self.splices = 0  # blocks made again with a change and spliced in
        self.late_splices = 0  # ... made too late to splice into the block they were made for
        self._recent: collections.deque[_Kept] = collections.deque()
        self._model_written = 0  # model-rate frames produced before the oldest kept block's end (splicing)
        self._ring_origin = ring.write_position  # ring position of the stream's first device frame
        self._before = np.zeros((0, ring.channels), dtype=np.float32)  # the tail of the last block no longer kept
        self._recent_lock = threading.RLock()  # the generation thread and set_recorder's caller both use _recent
        self._last_splice = -1  # ring position of the last splice: no new one before the listener reaches it
        self.clock = clock  # times the producer (seconds)
        self.block_s = 0.0  # how long a block of the session's steps takes to make (slowly decaying maximum)
        self.quick_s = 0.0  # ... a block of splice_steps (a splice's, or a hurried one)
        self._hurried = False  # the next block is made in splice_steps (splicer.hurry was called)

    @property
    def target_frames(self) -> int:
        """Generate when the ring holds fewer frames than this."""
        return max(1, int(self.ahead_blocks * self.block_frames))

    def set_recorder(self, recorder: Recorder | None) -> Recorder | None:
        """Record every block from now on into ``recorder`` (None: stop); returns the old one."""
        if recorder is None:
            self._flush_recent()
        with self._recorder_lock:
            old, self._recorder = self._recorder, recorder
        return old

    def step(self) -> Step:
        if len(self._pending):
            written = self.ring.write(self._pending)
            self._pending = self._pending[written:]
            return Step.WAITING if len(self._pending) else Step.GENERATED
        if (self.splicer is not None and self._recent and self.ring.read_position >= self._last_splice
                and self.splicer.changes_queued):
            try:
                spliced = self._splice()
            except Exception as exc:  # a bug here must not stop the music: the stream plays on unspliced
                self._report(exc)
                spliced = None
            if spliced is not None:
                return spliced
        if self.ring.fill >= self.target_frames:
            return Step.WAITING
        quick, self._hurried = self._hurried, False
        try:
            frames = self._produce(quick)
        except Exception as exc:  # the producer is user code: anything can happen
            self._report(exc)
            return Step.FAILED
        self._failing = False
        self.blocks += 1
        at = self.ring.write_position + len(self._pending)
        out = self.resampler.process(frames)
        self.block_frames = len(out)
        written = self.ring.write(out)
        self._pending = out[written:]
        if self.splicer is None:
            self._record(frames)
        else:
            self._keep(at, frames, len(out))
        return Step.GENERATED

    def _produce(self, quick: bool) -> np.ndarray:
        """The producer's next block as frames, its making time counted in the estimate for its kind."""
        start = self.clock()
        frames = as_frames(self.producer(), self.resampler.channels)
        took = self.clock() - start
        if self.blocks == 0:
            pass  # the stream's first block also builds its cache and warms up: not a block's usual time
        elif quick:
            self.quick_s = max(took, DECAY * self.quick_s + (1 - DECAY) * took)
        else:
            self.block_s = max(took, DECAY * self.block_s + (1 - DECAY) * took)
        return frames

    def _quick_estimate(self) -> float:
        """How long a block of splice_steps takes: as timed, or before any was, a full block's time
        scaled by the steps with a margin (the making time is not all in the steps)."""
        if self.quick_s > 0:
            return self.quick_s
        return self.block_s * min(1.0, self.splice_steps / max(1, self.splicer.settings.steps) + COLD_MARGIN)

    def _frames(self, seconds: float) -> int:
        return round(seconds * self.resampler.dst_rate)

    # splicing ---------------------------------------------------------------------------
    def _keep(self, at: int, frames: np.ndarray, out: int) -> None:
        """The newest block: ring position ``at``, ``out`` frames there (device rate), ``frames`` at the
        model rate; the blocks that can no longer be spliced are recorded."""
        with self._recent_lock:
            model_at = self._recent[-1].model_end if self._recent else self._model_written
            self._recent.append(_Kept(at, out, model_at, frames))
            self._model_written = model_at + len(frames)
            while len(self._recent) > self.splicer.rewindable or (
                    len(self._recent) > 1 and self._recent[1].ring_at <= self.ring.read_position):
                gone = self._recent.popleft().frames
                self._before = gone[-PRIME_FRAMES:]  # what a fresh resampler hears before the oldest kept block
                self._record(gone)

    def _flush_recent(self) -> None:
        with self._recent_lock:
            while self._recent:
                self._record(self._recent.popleft().frames)

    def _splice(self) -> Step | None:
        """Make the block holding (read position + margin) again with the queued changes and put it
        in from there (see the module docstring); None when the ring holds no audio that far ahead."""
        with self._recent_lock:
            return self._splice_locked()

    def _splice_locked(self) -> Step | None:
        target = self.ring.read_position + self.margin
        held = [i for i, k in enumerate(self._recent) if k.ring_at <= target < k.ring_at + k.ring_len]
        if not held:
            return None  # the next block made carries the change soon enough
        i = held[0]
        quick = self.splice_steps is not None
        remake = self._frames(self._quick_estimate() if quick else self.block_s)  # the remade block, and the one after it
        block = self._recent[i]
        if block.ring_at + block.ring_len - self.ring.read_position < 2 * remake + self.guard:
            if i + 1 == len(self._recent):
                return None  # the block made next carries the change, as without splicing
            i, target = i + 1, self._recent[i + 1].ring_at  # too little left of this block: into the next one
        back = len(self._recent) - i
        if back > self.splicer.rewindable:
            return None
        try:
            self.splicer.rewind(back, steps=self.splice_steps)
            frames = self._produce(quick)
        except Exception as exc:
            self._report(exc)
            return Step.FAILED
        self._failing = False
        self.blocks += 1
        kept = self._recent[i]
        before = self._recent[i - 1].frames if i > 0 else self._before
        for _ in range(back):
            self._recent.pop()
        self._model_written = kept.model_at
        out, first = self._resampled(frames, before, kept)  # device-rate frames from ring position `first` on
        at = max(target, self.ring.read_position + self.guard)  # the reader went on while it was made
        end = first + len(out)
        if not first <= at < end or at > self.ring.write_position:  # too late for this block: play it out, the next one follows the new
            self.late_splices += 1
            cut = max(kept.ring_at + kept.ring_len, self.ring.read_position + self.guard)  # the old blocks after it go
            if cut <= self.ring.write_position:
                self.ring.rewrite(cut, out[:0])
            self._recent.append(kept)
            self._model_written = kept.model_end
            self._pending = np.zeros((0, self.ring.channels), dtype=np.float32)
            return Step.GENERATED
        written = self.ring.rewrite(at, out[at - first :], self.fade)
        self._pending = out[at - first + written :]
        ratio = self.resampler.src_rate / self.resampler.dst_rate  # model frames per device frame
        offset = min(len(frames), max(0, round((at - kept.ring_at) * ratio)))
        k = min(round(self.fade * ratio), len(frames) - offset, len(kept.frames) - offset)
        heard = np.concatenate((kept.frames[:offset], crossfade(kept.frames[offset:offset + k], frames[offset:offset + k]),
                                frames[offset + k:]))  # as played, at the model rate (at the device's: exactly)
        self._recent.append(_Kept(kept.ring_at, end - kept.ring_at, kept.model_at, heard))
        self._model_written = kept.model_at + len(frames)
        self._last_splice = at
        self.splices += 1
        if quick and end - self.ring.read_position < self._frames(self.block_s) + self.guard:
            self.splicer.hurry(self.splice_steps)  # too little ahead for a block of the session's steps
            self._hurried = True
        return Step.GENERATED

    def _resampled(self, frames: np.ndarray, before: np.ndarray, kept: "_Kept") -> tuple[np.ndarray, int]:
        """The remade block at the device rate and the ring position its first frame belongs at. With a
        resampler in the way, a fresh one is primed with the audio before the block (as heard) and
        then takes over from the old one, whose state followed the old block."""
        r = self.resampler
        if r.passthrough:
            return frames, kept.ring_at
        prime = before[-PRIME_FRAMES:]
        fresh = Resampler(r.src_rate, r.dst_rate, r.channels)
        out = fresh.process(np.concatenate((prime, frames)))
        self.resampler = fresh
        # output frame j of the fresh stream is device frame (model_at - len(prime)) * ratio + j of the stream,
        # as the old resampler counted them (same filter, same delay)
        first = self._ring_origin + round((kept.model_at - len(prime)) * r.dst_rate / r.src_rate)
        return out, first

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
