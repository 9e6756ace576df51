"""Finding PortAudio and its devices, with one-line errors when they are not there.

sounddevice loads the PortAudio C library when it is imported, so it is imported here, lazily,
and never at ``import lmdm.audio`` time: the rest of the SDK works on machines without audio.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any


class AudioUnavailable(RuntimeError):
    """No usable audio: PortAudio or sounddevice missing, no device, or a device refused."""


def load_sounddevice() -> ModuleType:
    """Import sounddevice, turning a missing library into an ``AudioUnavailable``."""
    try:
        import sounddevice
    except OSError as exc:  # sounddevice is installed, the PortAudio C library is not
        raise AudioUnavailable(
            f"PortAudio not found ({exc}): on Debian/Ubuntu run `apt-get install libportaudio2`"
        ) from None
    except ImportError as exc:
        raise AudioUnavailable(
            f"the sounddevice package is missing ({exc}): pip install sounddevice"
        ) from None
    return sounddevice


def describe_device_error(exc: Exception, what: str) -> AudioUnavailable:
    """A one-line ``AudioUnavailable`` for a PortAudio/sounddevice error about ``what``."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "-1" in text and "device" in text.lower():
        return AudioUnavailable(
            f"no audio device for {what} ({text}): start a sound server such as JACK or "
            "PulseAudio, or pick a device from `lmdm devices`"
        )
    return AudioUnavailable(f"cannot use audio {what}: {text}")


def device_info(device: Any, kind: str) -> dict[str, Any]:
    """sounddevice's description of ``device`` (None: the default) as ``kind`` 'input'/'output'."""
    sd = load_sounddevice()
    try:
        return dict(sd.query_devices(device, kind))
    except (sd.PortAudioError, ValueError) as exc:
        raise describe_device_error(exc, f"{kind} {device!r}" if device is not None else kind) from None


def list_devices() -> str:
    """A readable table of the audio devices PortAudio can see (text for ``lmdm devices``).

    Never raises: when PortAudio or devices are missing the text says so and what to do.
    """
    try:
        sd = load_sounddevice()
    except AudioUnavailable as exc:
        return str(exc)
    hostapis = [api["name"] for api in sd.query_hostapis()]
    devices = list(sd.query_devices())
    header = f"{sd.get_portaudio_version()[1]}; host APIs: {', '.join(hostapis) or 'none'}"
    if not devices:
        return (
            f"{header}\nNo audio devices found. Start a sound server (for a silent test setup: "
            "`jackd --no-realtime -d dummy -r 16000`) or check that a sound card is present."
        )
    defaults = _default_indices(sd)
    rows = [header, f"{'#':>3}  {'name':<32} {'host API':<26} {'in':>3} {'out':>4}  rate"]
    for index, dev in enumerate(devices):
        marks = [kind for kind, default in zip(("default in", "default out"), defaults) if default == index]
        rows.append(
            f"{index:>3}  {dev['name'][:32]:<32} {hostapis[dev['hostapi']][:26]:<26} "
            f"{dev['max_input_channels']:>3} {dev['max_output_channels']:>4}  "
            f"{dev['default_samplerate']:.0f} Hz" + (f"  ({', '.join(marks)})" if marks else "")
        )
    return "\n".join(rows)


def _default_indices(sd: ModuleType) -> tuple[int, int]:
    try:
        inp, out = sd.default.device
    except (TypeError, ValueError):
        return -1, -1
    return (inp if isinstance(inp, int) else -1), (out if isinstance(out, int) else -1)
