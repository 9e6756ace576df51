"""Real-time audio: play generated blocks live, capture input, record the set.

Importing this package never loads PortAudio; sounddevice is imported when a stream opens or
devices are listed, and a missing library becomes a one-line ``AudioUnavailable``.
"""

from lmdm.audio.devices import AudioUnavailable, list_devices
from lmdm.audio.engine import AudioEngine, EngineConfig, EngineStats
from lmdm.audio.feeder import Feeder, Step
from lmdm.audio.playout import Playout
from lmdm.audio.record import Recorder, RecordError
from lmdm.audio.resample import Resampler, resample
from lmdm.audio.ring import RingBuffer

__all__ = [
    "AudioEngine",
    "AudioUnavailable",
    "EngineConfig",
    "EngineStats",
    "Feeder",
    "Playout",
    "RecordError",
    "Recorder",
    "Resampler",
    "RingBuffer",
    "Step",
    "list_devices",
    "resample",
]
