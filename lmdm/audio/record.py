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

Files are created exclusively (``O_EXCL``): an existing file, or a symbolic link (even one that
points nowhere), is never written through unless ``overwrite=True``. Where files may go:

- ``recording_path(folder, name)``: what `record "name"` (typed, from a set file, over OSC) may
  write, always inside one recordings folder (``lmdm live --record-dir``; by default the folder
  of the set file being played, or the current directory without one). Refused: ``..``,
  absolute paths outside the folder, symbolic links, missing subfolders, names that exist
  already.
- ``output_problem(path)``: the one policy for a command's output file (``-o`` of ``lmdm render``,
  ``lmdm live --offline``, ``lmdm delay``): a .wav/.flac/.ogg name in a folder that already exists
  (folders are never created), is writable and is not a system folder (/proc, /sys); an existing
  regular file is replaced. Commands write it with a ``Recorder`` too, so a killed command leaves
  a valid WAV (or WAV spool).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import soundfile

SFC_UPDATE_HEADER_NOW = 0x1060  # from sndfile.h; soundfile does not name it
ENCODED = {".flac": ("FLAC", "PCM_24"), ".ogg": ("OGG", "VORBIS")}  # written from a WAV spool on stop
SUFFIXES = (".wav", *ENCODED)  # every audio file lmdm writes
SYSTEM_FOLDERS = (Path("/proc"), Path("/sys"))  # kernel file systems: never a place for audio
SPOOL_SUFFIX = ".part.wav"


class RecordError(RuntimeError):
    """The recording could not be started or written (bad path, disk full, ...). Its message is
    one line (``one_line``), whatever characters a path holds."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


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
        self._fd: int | None = None  # the spool's descriptor, closed after the SoundFile
        self._overwrite = False
        self._unsynced = 0

    @property
    def recording(self) -> bool:
        return self._file is not None

    def start(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Recorder:
        """Create ``path`` (.wav, or .flac/.ogg through a WAV spool) and begin recording into it.

        The file is created exclusively: if it (or the spool) exists, even as a dangling symbolic
        link, this refuses, unless ``overwrite`` (which then writes through links)."""
        if self._file is not None:
            raise RecordError(f"already recording to {self.path}")
        target = Path(path)
        if target.suffix.lower() not in SUFFIXES:
            raise RecordError(f"recordings are .wav, .flac or .ogg files: {target} is none of those")
        spool = spool_for(target)
        for existing in {target, spool}:
            if os.path.lexists(existing) and not overwrite:
                raise RecordError(f"{existing} already exists; choose another name (or overwrite=True)")
        try:
            fd = create(spool, overwrite=overwrite)
        except OSError as exc:
            raise RecordError(f"cannot record to {target}: {_reason(exc)}") from None
        try:
            self._file = soundfile.SoundFile(
                fd, "w", samplerate=self.samplerate, channels=self.channels,
                format="WAV", subtype=self.subtype, closefd=False,
            )
        except (OSError, RuntimeError) as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                spool.unlink()  # ours: created just above
            raise RecordError(f"cannot record to {target}: {_reason(exc)}") from None
        self.path, self.spool, self.frames_written, self._unsynced = target, spool, 0, 0
        self._fd, self._overwrite = fd, overwrite
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
        fd, self._fd = self._fd, None
        try:
            try:
                file.close()
            finally:
                if fd is not None:
                    os.close(fd)
            if self.spool != self.path:
                encode(self.spool, self.path, overwrite=self._overwrite)
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


def encode(spool: Path, target: Path, block_frames: int = 1 << 16, *, overwrite: bool = False) -> None:
    """Copy a finished WAV spool into `target`'s format (by its suffix), block by block; `target`
    is created exclusively unless `overwrite`."""
    fmt, subtype = ENCODED[target.suffix.lower()]
    with soundfile.SoundFile(spool) as src:
        fd = create(target, overwrite=overwrite)
        try:
            with soundfile.SoundFile(fd, "w", samplerate=src.samplerate, channels=src.channels,
                                     format=fmt, subtype=subtype, closefd=False) as dst:
                for block in src.blocks(block_frames, dtype="float32", always_2d=True):
                    dst.write(block)
        finally:
            os.close(fd)


def spool_for(target: Path) -> Path:
    """What is written while recording ``target``: itself for .wav, else ``target.part.wav``."""
    return target if target.suffix.lower() == ".wav" else target.with_name(target.name + SPOOL_SUFFIX)


def create(path: Path, *, overwrite: bool = False) -> int:
    """A new file's descriptor, for writing. Exclusive (``O_EXCL``: fails if anything, even a
    dangling symbolic link, has that name) unless ``overwrite``, which truncates."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | (os.O_TRUNC if overwrite else os.O_EXCL)
    return os.open(path, flags, 0o666)


# --- where audio files may go -----------------------------------------------------------------


def recordings_folder(path: str | os.PathLike[str], *, check: bool = True) -> Path:
    """The recordings folder ``path``, resolved (symbolic links followed once, here). With
    ``check``, a one-line ``RecordError`` unless it is a writable folder (without, a folder that
    is not fit shows when `record` fails)."""
    folder = Path(os.path.realpath(path))
    problem = folder_problem(Path(path)) if check else None
    if problem:
        raise RecordError(f"the recordings folder {path}: {problem}")
    return folder


def recording_path(folder: Path, name: str) -> Path:
    """Where `record "name"` writes: ``name`` inside ``folder`` (as given by ``recordings_folder``).

    ``name`` is a file name, or a path relative to the folder through subfolders that exist, or an
    absolute path inside the folder. Refused with a one-line ``RecordError``: ``..``, an absolute
    path elsewhere, a backslash, a suffix other than .wav/.flac/.ogg, a missing subfolder, a
    symbolic link anywhere below the folder, a name (or spool) that exists already. The file is
    then created exclusively by ``Recorder.start``, so nothing can slip in between.
    """
    if not name or "\x00" in name or "\\" in name:
        raise RecordError(f"record needs a file name such as \"set.wav\" (with / between folders), got {name!r}")
    given = Path(name)
    if ".." in given.parts:
        raise RecordError(f"record {name!r}: '..' is not allowed; recordings go in {folder}")
    if given.is_absolute():
        if not given.is_relative_to(folder):
            raise RecordError(f"record {name!r}: outside the recordings folder {folder} (--record-dir)")
        given = given.relative_to(folder)
    if not given.parts or given.suffix.lower() not in SUFFIXES:
        raise RecordError(f"record {name!r}: recordings are .wav, .flac or .ogg files")
    here = folder
    for part in given.parts[:-1]:
        here = here / part
        if here.is_symlink():
            raise RecordError(f"record {name!r}: {here} is a symbolic link; recordings stay in {folder}")
        if not here.is_dir():
            raise RecordError(f"record {name!r}: there is no folder {here}")
    target = here / given.name
    for path in (target, spool_for(target)):
        if path.is_symlink():
            raise RecordError(f"record {name!r}: {path} is a symbolic link; record to a new file")
        if os.path.lexists(path):
            raise RecordError(f"record {name!r}: {path} already exists; record to a new file")
    return target


def output_problem(path: str | os.PathLike[str]) -> str | None:
    """Why a command cannot write its audio output to ``path``, in one line; None if it can.

    The one policy for every command's output (``-o``): a .wav, .flac or .ogg name, in a folder
    that already exists (folders are never created), is writable and is not a system folder
    (/proc, /sys). An existing regular file is replaced; a folder or a device is not.
    """
    problem = _output_problem(Path(path))
    return None if problem is None else one_line(problem)


def _output_problem(out: Path) -> str | None:
    if out.suffix.lower() not in SUFFIXES:
        return f"cannot write {out}: the output must end in .wav, .flac or .ogg, got {out.name!r}"
    problem = folder_problem(out.parent)
    if problem:
        return f"cannot write {out}: {problem}"
    for file in {out, spool_for(out)}:
        if file.is_dir():
            return f"cannot write {out}: {file} is a folder"
        if file.exists() and not file.is_file():
            return f"cannot write {out}: {file} is not a regular file"
        if file.exists() and not os.access(file, os.W_OK):
            return f"cannot write {out}: {file} is not writable"
    return None


def folder_problem(folder: Path) -> str | None:
    """Why audio files cannot be created in ``folder`` (one phrase); None if they can."""
    real = Path(os.path.realpath(folder))
    if any(real == system or real.is_relative_to(system) for system in SYSTEM_FOLDERS):
        return f"{folder} is a system folder ({', '.join(map(str, SYSTEM_FOLDERS))}), not a place for audio"
    if not folder.exists():
        return f"the folder {folder} does not exist (folders are not created)"
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder {folder} is not writable"
    return None


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


def one_line(text: str) -> str:
    """``text`` with line breaks and other unprintable characters escaped (``\\n``): one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
