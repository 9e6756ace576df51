"""The real-time audio engine: a generation thread feeding a sounddevice callback.

Data path, one file each::

    producer() -> [n, ch] at the model rate        (user code, ~0.1-0.5 s per ~2 s block)
      -> Feeder: record, resample to the device rate, write into the ring   (generation thread)
      -> RingBuffer (preallocated, lock-free SPSC)
      -> Playout.fill(outdata): copy out, fade on underrun             (audio callback)
      -> the device

With ``input_channels > 0`` the stream is duplex: each callback also copies the captured frames
into an input ring, and ``read_input()`` returns them at the model rate (for jamming / delay).

A watchdog thread ("lmdm-watchdog") notices a lost or stalled device (no callback for
``stall_s``): it says so in one line, takes the audio out of the ring at the wall clock's pace
instead (``Pacer``), so generation and recording go on in real time, and tries to reopen the
device (then the default one) every ``reopen_s``, backing off. A stream PortAudio cannot close
(a vanished JACK server blocks ``Pa_StopStream`` for minutes) is left behind, never waited for.
See docs/audio.md for buffer sizes, latency and device loss.
"""

from __future__ import annotations

import atexit
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from lmdm.audio.config import FLAG_NAMES, EngineConfig, EngineStats, StreamFlags
from lmdm.audio.devices import AudioUnavailable, describe_device_error, device_info, load_sounddevice
from lmdm.audio.feeder import ErrorHandler, Feeder, Producer, Splicer
from lmdm.audio.playout import Pacer, Playout
from lmdm.audio.record import Recorder
from lmdm.audio.resample import Resampler, integer_rate
from lmdm.audio.ring import RingBuffer

log = logging.getLogger(__name__)

__all__ = ["FLAG_NAMES", "AudioEngine", "EngineConfig", "EngineStats", "StreamFlags"]


class AudioEngine:
    """Plays what ``producer`` returns, block after block, on a sounddevice stream.

    ``producer()`` returns the next block as [frames, channels] (or [frames] when mono) at
    ``config.model_rate``. It runs on the engine's generation thread; if it raises, the error is
    counted, logged, passed to ``on_error``, and the producer is called again after
    ``config.backoff_s``. ``clock`` times the callbacks (tests can pass a fake). ``on_notice``
    gets the one-line notices of the device watchdog (device lost, device back); default: logged.
    """

    def __init__(
        self,
        producer: Producer,
        config: EngineConfig = EngineConfig(),
        *,
        on_error: ErrorHandler | None = None,
        on_notice: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        splicer: Splicer | None = None,
    ) -> None:
        if config.splice and splicer is None:
            raise ValueError("EngineConfig(splice=True) needs the producer's session: AudioEngine(session.next_block, config, splicer=session)")
        self.splicer = splicer if config.splice else None
        self.producer = producer
        self.config = config
        self.on_error = on_error
        self.on_notice = on_notice
        self.clock = clock
        self._running = False
        self._stream: Any = None  # the stream playing now; None while the device is lost
        self._token: object | None = None  # only the callbacks of the stream holding it play
        self._consume = threading.Lock()  # held by a playing callback; taken to hand the ring over
        self._left_behind: list[Any] = []  # lost streams (and their callbacks): kept alive, never waited for
        self._thread: threading.Thread | None = None
        self._watchdog: threading.Thread | None = None
        self._stop = threading.Event()
        self._recorder: Recorder | None = None
        self._build(config.device_rate or config.model_rate)

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> AudioEngine:
        """Open the device, start the generation thread, the stream and the watchdog."""
        if self._running:
            raise RuntimeError("the audio engine is already running")
        cfg = self.config
        rate = cfg.device_rate or integer_rate(device_info(self._output_device(cfg.device), "output")["default_samplerate"])
        self._build(rate)
        self._stop.clear()
        self._thread = self._spawn(self._feeder.run, "lmdm-generate", self._stop, cfg.poll_s, cfg.backoff_s)
        try:
            self._stream = self._open(cfg.device)
        except AudioUnavailable:
            self._stop.set()
            self._thread.join(cfg.join_timeout_s)
            self._thread = None
            raise
        self._running = True
        self._watchdog = self._spawn(self._watch, "lmdm-watchdog", self._stop)
        log.info("audio engine running at %d Hz (model %d Hz)", rate, cfg.model_rate)
        return self

    def stop(self) -> None:
        """Stop and close the stream, join the generation thread, finish any recording.
        Safe to call twice; never waits long for a device that is gone."""
        self._running = False
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join(self.config.join_timeout_s)
            self._watchdog = None
        stream, self._stream = self._stream, None
        self._hand_over(None)
        if stream is not None:
            self._close(stream, self.config.close_timeout_s)
        left, self._left_behind = self._left_behind, []
        for lost in left:  # one short try each: a vanished JACK server blocks this for minutes
            self._close(lost, 0.2)
        if self._thread is not None:
            self._thread.join(self.config.join_timeout_s)
            if self._thread.is_alive():
                log.warning("the producer is still running after %.1f s; leaving it behind",
                            self.config.join_timeout_s)
            self._thread = None
        self.stop_recording()

    def __enter__(self) -> AudioEngine:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ features

    def stats(self) -> EngineStats:
        playout, feeder = self._playout, self._feeder
        return EngineStats(
            running=self.running,
            device_rate=self.device_rate,
            buffer_seconds=self._ring.fill / self.device_rate,
            callbacks=playout.callbacks,
            frames_played=playout.frames_played,
            underruns=playout.underruns,
            starved_frames=playout.starved_frames,
            last_callback_interval=playout.last_interval,
            blocks_generated=feeder.blocks,
            producer_errors=feeder.errors,
            xruns=self._xruns,
            callback_errors=self._callback_errors,
            input_overflows=self._input_overflows,
            flags=StreamFlags(*self._flag_counts),
            device_lost=self._running and self._token is None,
            device_losses=self._losses,
            reopens=self._reopens,
            paced_frames=self._pacer.frames,
            splices=feeder.splices,
            late_splices=feeder.late_splices,
        )

    def output_latency(self) -> float:
        """The output latency the open device reports (PortAudio's, seconds); 0 with no device open."""
        latency = getattr(self._stream, "latency", 0.0) or 0.0
        return float(latency[1] if isinstance(latency, (tuple, list)) else latency)

    def read_input(self, max_frames: int | None = None) -> np.ndarray:
        """Captured input since the last call, at the model rate: [frames, input_channels].

        At most ``max_frames`` frames (the rest is kept for the next call). Call it from one
        thread only.
        """
        if self._input_ring is None:
            raise RuntimeError("this engine has no input: set EngineConfig(input_channels=...)")
        captured = self._input_ring.read()
        if len(captured):
            fresh = self._input_resampler.process(captured)
            self._input_pending = np.concatenate([self._input_pending, fresh])
        count = len(self._input_pending) if max_frames is None else max(0, max_frames)
        out, self._input_pending = self._input_pending[:count], self._input_pending[count:]
        return out

    def record(self, path: str, *, subtype: str = "PCM_24", overwrite: bool = False) -> Recorder:
        """Start recording the generated blocks (model rate, WAV) into ``path``."""
        self.stop_recording()
        recorder = Recorder(self.config.model_rate, self.config.channels, subtype=subtype)
        recorder.start(path, overwrite=overwrite)
        self._recorder = recorder
        self._feeder.set_recorder(recorder)
        return recorder

    def stop_recording(self) -> None:
        recorder, self._recorder = self._recorder, None
        self._feeder.set_recorder(None)
        if recorder is not None:
            recorder.stop()

    # ------------------------------------------------------------------ internals

    def _build(self, device_rate: int) -> None:
        """Fresh ring, playout, feeder (and input side) for one run at ``device_rate``."""
        cfg = self.config
        self.device_rate = device_rate
        self._ring = RingBuffer(math.ceil(cfg.buffer_seconds * device_rate), cfg.channels)
        self._playout = Playout(self._ring, fade_frames=round(cfg.fade_ms * device_rate / 1000))
        self._pacer = Pacer(self._ring, device_rate)
        resampler = Resampler(cfg.model_rate, device_rate, cfg.channels)
        frames = lambda ms: round(ms * device_rate / 1000)  # noqa: E731
        self._feeder = Feeder(
            self.producer, self._ring, resampler, ahead_blocks=cfg.ahead_blocks, on_error=self.on_error,
            splicer=self.splicer, margin=frames(cfg.splice_margin_ms), fade=frames(cfg.fade_ms),
            guard=max(2 * cfg.blocksize, frames(50.0)), splice_steps=cfg.splice_steps,
        )
        self._feeder.set_recorder(self._recorder)
        self._input_ring: RingBuffer | None = None
        if cfg.input_channels:
            self._input_ring = RingBuffer(math.ceil(cfg.input_seconds * device_rate), cfg.input_channels)
            self._input_resampler = Resampler(device_rate, cfg.model_rate, cfg.input_channels)
            self._input_pending = np.zeros((0, cfg.input_channels), dtype=np.float32)
        self._xruns = 0
        self._flag_counts = [0] * len(FLAG_NAMES)
        self._callback_errors = 0
        self._input_overflows = 0
        self._heartbeats = 0  # callbacks of the current stream: the watchdog's pulse
        self._ended: object | None = None  # the token of a stream whose finished_callback ran
        self._losses = 0
        self._reopens = 0

    @staticmethod
    def _spawn(target: Callable[..., None], name: str, *args: Any) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        return thread

    @staticmethod
    def _output_device(device: Any) -> Any:
        return device[1] if isinstance(device, (tuple, list)) else device

    def _open(self, device: Any) -> Any:
        """Open and start a stream on ``device`` at the engine's rate; it plays from the ring at once."""
        cfg, sd = self.config, load_sounddevice()
        token = object()
        args = dict(
            samplerate=self.device_rate, blocksize=cfg.blocksize, device=device, dtype="float32",
            latency=cfg.latency, finished_callback=lambda: self._finished(token),
        )
        stream = None
        try:
            if cfg.input_channels:
                stream = sd.Stream(channels=(cfg.input_channels, cfg.channels), callback=self._duplex_callback(token), **args)
            else:
                stream = sd.OutputStream(channels=cfg.channels, callback=self._output_callback(token), **args)
            self._hand_over(token)
            stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            self._hand_over(None)
            if stream is not None:
                self._close(stream, self.config.close_timeout_s)
            raise describe_device_error(exc, f"output at {self.device_rate} Hz") from None
        return stream

    def _hand_over(self, token: object | None) -> None:
        """Let the callbacks of the stream holding ``token`` play (None: none do; the pacer may
        read the ring). Waits for a callback in the middle of playing, but not for ever."""
        got = self._consume.acquire(timeout=self.config.stall_s)
        self._token = token
        self._heartbeats = 0
        if got:
            self._consume.release()

    def _close(self, stream: Any, timeout: float) -> None:
        """Stop and close ``stream`` on a helper thread; give up waiting after ``timeout``."""

        def close() -> None:
            try:
                stream.stop()
                stream.close()
            except Exception as exc:  # a dead server must not stop the shutdown
                log.warning("closing the audio stream failed: %s", exc)

        helper = self._spawn(close, "lmdm-close-stream")
        helper.join(timeout)
        if helper.is_alive():
            _leave_portaudio_at_exit()

    def _output_callback(self, token: object) -> Callable[..., None]:
        def callback(outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
            self._play(token, outdata, status)

        return callback

    def _duplex_callback(self, token: object) -> Callable[..., None]:
        def callback(indata: np.ndarray, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
            if token is self._token:
                try:
                    if self._input_ring is not None and self._input_ring.write(indata) < frames:
                        self._input_overflows += 1
                except Exception:
                    self._callback_errors += 1
            self._play(token, outdata, status)

        return callback

    def _play(self, token: object, outdata: np.ndarray, status: Any) -> None:
        """The callback proper: fill ``outdata`` from the ring if ``token``'s stream is the one
        playing; silence otherwise. Never blocks."""
        if token is not self._token or not self._consume.acquire(blocking=False):
            outdata.fill(0.0)
            return
        try:
            self._heartbeats += 1
            if status:
                self._count_flags(status)
            self._playout.fill(outdata, self.clock())
        except Exception:  # never let an exception stop the stream
            self._callback_errors += 1
            outdata.fill(0.0)
        finally:
            self._consume.release()

    def _count_flags(self, status: Any) -> None:
        self._xruns += 1
        for index, name in enumerate(FLAG_NAMES):
            if getattr(status, name, False):
                self._flag_counts[index] += 1

    def _finished(self, token: object) -> None:
        self._ended = token  # the watchdog reports it (a stream ends on its own when its device goes)

    # ------------------------------------------------------------------ the watchdog

    def _watch(self, stop: threading.Event) -> None:
        """Every ``watch_s``: check the device's pulse; while it is lost, pace the ring by the
        wall clock and try to reopen a device now and then."""
        cfg = self.config
        seen, since = 0, time.monotonic()
        wait_s, next_try, lost_at = cfg.reopen_s, 0.0, 0.0
        while not stop.wait(cfg.watch_s):
            now = time.monotonic()
            if self._token is not None:
                if self._heartbeats != seen:
                    seen, since = self._heartbeats, now
                    continue
                reason = self._stall_reason(seen, now - since)
                if reason:
                    self._lose(now, reason)
                    wait_s, next_try, lost_at = cfg.reopen_s, now + cfg.reopen_s, now
                continue
            self._pacer.advance(now)
            if now >= next_try and not stop.is_set():
                if self._reopen(now - lost_at):
                    seen, since = 0, time.monotonic()
                else:
                    wait_s = min(2 * wait_s, cfg.reopen_max_s)
                    next_try = time.monotonic() + wait_s

    def _stall_reason(self, beats: int, quiet_s: float) -> str | None:
        """Why the device counts as lost now, or None."""
        if self._ended is not None and self._ended is self._token:
            return "the stream stopped on its own"
        limit = self.config.stall_s if beats else self.config.first_callback_s
        if quiet_s > limit:
            return f"no callback for {quiet_s:.1f} s"
        return None

    def _lose(self, now: float, reason: str) -> None:
        """The device is gone: leave its stream behind, let the wall clock pace the ring."""
        stream, self._stream = self._stream, None
        self._hand_over(None)
        if stream is not None:
            self._left_behind.append(stream)  # PortAudio may still hold (and call) its callback
        self._playout.playing = False  # a device that comes back fades in
        self._pacer.start(now)
        self._losses += 1
        self._notice(f"audio device lost ({reason}): generating and recording go on in real time; "
                     f"trying to reopen it every {self.config.reopen_s:g} s or more")

    def _reopen(self, lost_s: float) -> bool:
        """Try the configured device, then the default one; True once one plays."""
        tries = [self.config.device] + ([None] if self.config.device is not None else [])
        for device in tries:
            try:
                self._stream = self._open(device)
            except AudioUnavailable as exc:
                log.debug("reopening audio device %r failed: %s", device, exc)
                continue
            self._reopens += 1
            where = "the default device" if device is None else f"device {device!r}"
            self._notice(f"audio device back: playing on {where} at {self.device_rate} Hz "
                         f"after {lost_s:.1f} s without one")
            return True
        return False

    def _notice(self, line: str) -> None:
        if self.on_notice is None:
            log.warning("%s", line)
            return
        try:
            self.on_notice(line)
        except Exception:
            log.exception("the on_notice handler raised")


def _leave_portaudio_at_exit() -> None:
    """A stream PortAudio cannot close (its JACK server vanished: Pa_StopStream waits minutes,
    Pa_Terminate asserts) would hang or abort the process at exit in sounddevice's exit handler;
    leave PortAudio to the operating system instead."""
    try:
        import sounddevice
    except (ImportError, OSError):
        return
    handler = getattr(sounddevice, "_exit_handler", None)
    if handler is not None:
        atexit.unregister(handler)
    log.warning("PortAudio could not close a lost audio stream; it is left to the system at exit")
