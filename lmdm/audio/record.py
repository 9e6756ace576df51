"""Recording a set to a file that stays valid if the process is killed mid-set.

FLAC and Ogg files cannot be kept valid while they grow, so `record "set.flac"` writes a WAV
spool next to the target (``set.flac.part.wav``) and encodes it to FLAC on `stop()`. If the
process dies, the spool is a complete WAV of everything played so far.

Format: WAV (RIFF), 24-bit PCM by default, written with soundfile (libsndfile). A WAV header
holds the data length, which libsndfile normally writes only on close. So after every
``sync_seconds`` of audio the recorder asks libsndfile to rewrite the header for the data
written so far (``SFC_UPDATE_HEADER_NOW``) and then flushes (``sf_write_sync``, an fsync). If the
process dies (SIGKILL, power loss after a sync) the file is a well-formed WAV holding everything
up to the last sync; anything written after it is trailing bytes that readers ignore. Strict
readers such as Python's ``wave`` module open it too, not only libsndfile.

Writes happen on the caller's thread (the engine's generation thread), never in the audio
callback. Samples beyond +-1 are clipped, as libsndfile does for PCM.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile

SFC_UPDATE_HEADER_NOW = 0x1060  # from sndfile.h; soundfile does not name it
ENCODED = {".flac": ("FLAC", "PCM_24"), ".ogg": ("OGG", "VORBIS")}  # written from a WAV spool on stop


class RecordError(RuntimeError):
    """The recording could not be started or written (bad path, disk full, ...)."""


class Recorder:
    def __init__(
        self,
        samplerate: int,
        channels: int = 1,
        *,
        subtype: str = "PCM_24",
        sync_seconds: float = 1.0,
    ) -> None:
        if not soundfile.check_format("WAV", subtype):
            raise RecordError(f"WAV cannot hold {subtype!r} samples; try PCM_16, PCM_24 or FLOAT")
        self.samplerate = int(samplerate)
        self.channels = int(channels)
        self.subtype = subtype
        self.sync_frames = max(1, int(round(sync_seconds * self.samplerate)))
        self.path: Path | None = None  # what the performer asked for
        self.spool: Path | None = None  # what is being written (== path for .wav)
        self.frames_written = 0
        self._file: soundfile.SoundFile | None = None
        self._unsynced = 0

    @property
    def recording(self) -> bool:
        return self._file is not None

    def start(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Recorder:
        """Create ``path`` (.wav, or .flac/.ogg through a WAV spool) and begin recording into it."""
        if self._file is not None:
            raise RecordError(f"already recording to {self.path}")
        target = Path(path)
        suffix = target.suffix.lower()
        if suffix not in ENCODED and suffix != ".wav":
            raise RecordError(f"recordings are .wav, .flac or .ogg files: {target} is none of those")
        spool = target if suffix == ".wav" else target.with_name(target.name + ".part.wav")
        for existing in {target, spool}:
            if existing.exists() and not overwrite:
                raise RecordError(f"{existing} already exists; choose another name (or overwrite=True)")
        try:
            with open(spool, "wb"):  # surfaces a plain OS reason (missing folder, permissions)
                pass
            self._file = soundfile.SoundFile(
                spool, "w", samplerate=self.samplerate, channels=self.channels,
                format="WAV", subtype=self.subtype,
            )
        except (OSError, RuntimeError) as exc:
            raise RecordError(f"cannot record to {target}: {_reason(exc)}") from None
        self.path, self.spool, self.frames_written, self._unsynced = target, spool, 0, 0
        self._sync()
        return self

    def write(self, block: np.ndarray) -> None:
        """Append ``block`` ([frames, channels], or [frames] when mono) to the file."""
        if self._file is None:
            raise RecordError("not recording: call start(path) first")
        frames = block[:, None] if block.ndim == 1 else block
        if frames.ndim != 2 or frames.shape[1] != self.channels:
            raise RecordError(
                f"recorder expects blocks shaped [n, {self.channels}], got {list(block.shape)}"
            )
        try:
            self._file.write(np.asarray(frames, dtype=np.float32))
        except (OSError, RuntimeError) as exc:
            raise RecordError(f"cannot write to {self.path}: {_reason(exc)}") from None
        self.frames_written += len(frames)
        self._unsynced += len(frames)
        if self._unsynced >= self.sync_frames:
            self._sync()

    def stop(self) -> None:
        """Finish the file (final header) and close it. Safe to call twice."""
        if self._file is None:
            return
        file, self._file = self._file, None
        try:
            file.close()
            if self.spool != self.path:
                encode(self.spool, self.path)
                self.spool.unlink()
        except (OSError, RuntimeError) as exc:
            raise RecordError(f"cannot finish {self.path}: {_reason(exc)} (the audio is safe in {self.spool})") from None

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _sync(self) -> None:
        """Make the header describe the data so far, then push both to disk."""
        assert self._file is not None
        update_header(self._file)
        self._file.flush()
        self._unsynced = 0


def encode(spool: Path, target: Path, block_frames: int = 1 << 16) -> None:
    """Copy a finished WAV spool into `target`'s format (by its suffix), block by block."""
    fmt, subtype = ENCODED[target.suffix.lower()]
    with soundfile.SoundFile(spool) as src, soundfile.SoundFile(
        target, "w", samplerate=src.samplerate, channels=src.channels, format=fmt, subtype=subtype
    ) as dst:
        for block in src.blocks(block_frames, dtype="float32", always_2d=True):
            dst.write(block)


def update_header(file: soundfile.SoundFile) -> bool:
    """Rewrite the file's header for the frames written so far; False if unsupported.

    Uses soundfile's private handles (``_snd``, ``_ffi``, ``_file``), unchanged since 2015; if a
    future soundfile drops them the recording still works, and libsndfile can still read a
    killed file (it treats a zero data length as "to the end of the file"), but strict readers
    could not.
    """
    lib = getattr(soundfile, "_snd", None)
    ffi = getattr(soundfile, "_ffi", None)
    handle = getattr(file, "_file", None)
    if lib is None or ffi is None or handle is None:
        return False
    lib.sf_command(handle, SFC_UPDATE_HEADER_NOW, ffi.NULL, 0)
    return True


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
