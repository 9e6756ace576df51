"""The real-time audio engine: a generation thread feeding a sounddevice callback.

Data path, one file each::

    producer() -> [n, ch] at the model rate        (user code, ~0.1-0.5 s per ~2 s block)
      -> Feeder: record, resample to the device rate, write into the ring   (generation thread)
      -> RingBuffer (preallocated, lock-free SPSC)
      -> Playout.fill(outdata): copy out, fade on underrun             (audio callback)
      -> the device

With ``input_channels > 0`` the stream is duplex: each callback also copies the captured frames
into an input ring, and ``read_input()`` returns them at the model rate (for jamming / delay).
See docs/audio.md for buffer sizes and latency.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any, Callable

import attrs
import numpy as np

from lmdm.audio.devices import describe_device_error, device_info, load_sounddevice
from lmdm.audio.feeder import ErrorHandler, Feeder, Producer
from lmdm.audio.playout import Playout
from lmdm.audio.record import Recorder
from lmdm.audio.resample import Resampler, integer_rate
from lmdm.audio.ring import RingBuffer

log = logging.getLogger(__name__)

_positive = attrs.validators.gt(0)
_non_negative = attrs.validators.ge(0)


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
    xruns: int  # callbacks that PortAudio flagged (the callback itself was late, or input overflowed)
    callback_errors: int  # exceptions caught inside the callback (should stay 0)
    input_overflows: int  # callbacks whose captured frames did not fit the input ring

    def summary(self) -> str:
        """One line for a status display."""
        return (
            f"buffer {self.buffer_seconds:.2f} s, {self.blocks_generated} blocks, "
            f"{self.underruns} underruns, {self.producer_errors} producer errors, "
            f"{self.xruns} xruns, callback every {self.last_callback_interval * 1000:.1f} ms"
        )


class AudioEngine:
    """Plays what ``producer`` returns, block after block, on a sounddevice stream.

    ``producer()`` returns the next block as [frames, channels] (or [frames] when mono) at
    ``config.model_rate``. It runs on the engine's generation thread; if it raises, the error is
    counted, logged, passed to ``on_error``, and the producer is called again after
    ``config.backoff_s``. ``clock`` times the callbacks (tests can pass a fake).
    """

    def __init__(
        self,
        producer: Producer,
        config: EngineConfig = EngineConfig(),
        *,
        on_error: ErrorHandler | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.producer = producer
        self.config = config
        self.on_error = on_error
        self.clock = clock
        self._stream: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._stopping = False
        self._recorder: Recorder | None = None
        self._build(config.device_rate or config.model_rate)

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        return self._stream is not None

    def start(self) -> AudioEngine:
        """Open the device, start the generation thread and the stream."""
        if self._stream is not None:
            raise RuntimeError("the audio engine is already running")
        cfg = self.config
        sd = load_sounddevice()
        out_device = cfg.device[1] if isinstance(cfg.device, (tuple, list)) else cfg.device
        rate = cfg.device_rate or integer_rate(device_info(out_device, "output")["default_samplerate"])
        self._build(rate)
        stream_args = dict(
            samplerate=rate, blocksize=cfg.blocksize, device=cfg.device, dtype="float32",
            latency=cfg.latency, finished_callback=self._finished,
        )
        try:
            if cfg.input_channels:
                stream = sd.Stream(
                    channels=(cfg.input_channels, cfg.channels), callback=self._duplex_callback, **stream_args
                )
            else:
                stream = sd.OutputStream(channels=cfg.channels, callback=self._output_callback, **stream_args)
        except (sd.PortAudioError, ValueError) as exc:
            raise describe_device_error(exc, f"output at {rate} Hz") from None
        self._stop.clear()
        self._stopping = False
        self._thread = threading.Thread(
            target=self._feeder.run, args=(self._stop, cfg.poll_s, cfg.backoff_s),
            name="lmdm-generate", daemon=True,
        )
        self._thread.start()
        try:
            stream.start()
        except sd.PortAudioError as exc:
            self._stop.set()
            self._thread.join(cfg.join_timeout_s)
            stream.close()
            raise describe_device_error(exc, f"output at {rate} Hz") from None
        self._stream = stream
        log.info("audio engine running at %d Hz (model %d Hz)", rate, cfg.model_rate)
        return self

    def stop(self) -> None:
        """Stop and close the stream, join the generation thread, finish any recording.
        Safe to call twice."""
        stream, self._stream = self._stream, None
        self._stopping = True
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception as exc:  # a dead server must not stop the shutdown
                log.warning("closing the audio stream failed: %s", exc)
        self._stop.set()
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
        )

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
        resampler = Resampler(cfg.model_rate, device_rate, cfg.channels)
        self._feeder = Feeder(
            self.producer, self._ring, resampler, ahead_blocks=cfg.ahead_blocks, on_error=self.on_error
        )
        self._feeder.set_recorder(self._recorder)
        self._input_ring: RingBuffer | None = None
        if cfg.input_channels:
            self._input_ring = RingBuffer(math.ceil(cfg.input_seconds * device_rate), cfg.input_channels)
            self._input_resampler = Resampler(device_rate, cfg.model_rate, cfg.input_channels)
            self._input_pending = np.zeros((0, cfg.input_channels), dtype=np.float32)
        self._xruns = 0
        self._callback_errors = 0
        self._input_overflows = 0

    def _output_callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status:
            self._xruns += 1
        try:
            self._playout.fill(outdata, self.clock())
        except Exception:  # never let an exception stop the stream
            self._callback_errors += 1
            outdata.fill(0.0)

    def _duplex_callback(
        self, indata: np.ndarray, outdata: np.ndarray, frames: int, time_info: Any, status: Any
    ) -> None:
        try:
            if self._input_ring is not None and self._input_ring.write(indata) < frames:
                self._input_overflows += 1
        except Exception:
            self._callback_errors += 1
        self._output_callback(outdata, frames, time_info, status)

    def _finished(self) -> None:
        if not self._stopping:
            log.error("the audio stream stopped on its own (device lost or sound server gone?)")

