"""Sampled instruments: every corpus instrument played by a General MIDI soundfont program.

The numpy voices in ``instruments``/``drums`` are one way to sound a note; this module is the
other. Each corpus instrument name maps to a GM program (pitched) or a GM drum kit (bank 128,
played on MIDI channel 10 with the notes' GM drum numbers), and FluidSynth renders one note at a
time, exactly as the synth voices do:

    (instrument, pitch, gate, velocity step) --noteon, gate, noteoff, release until silent-->
        float32 [samples] at the corpus's rate, left and right summed to mono, unit-ish level

so the renderer's sharing of renderings, stems, effects, levels and frame annotations stay exactly
as they are (``render.render_sound`` calls ``SampledInstruments.sound``). FluidSynth's own reverb
and chorus are off: the corpus adds its room itself (``effects``). The soundfont's velocity layers
change timbre *and* level; the renderer multiplies by the note's velocity afterwards, so MIDI
velocity is drawn from a compressed range (``midi_velocity``) to keep dynamics close to the
synth voices'.

Needs ``pyfluidsynth`` and Debian's ``libfluidsynth3`` (the ``[sampled]`` extra) and a soundfont:
``fluid-soundfont-gm`` (FluidR3_GM.sf2, MIT) for corpora, ``timgm6mb-soundfont`` (GPL-2) in CI.
"""

from __future__ import annotations

import math
from pathlib import Path

import attrs
import numpy as np

SOUNDFONT_DIRS = (Path("/usr/share/sounds/sf2"), Path("/usr/share/soundfonts"))
SOUNDFONTS = ("FluidR3_GM.sf2", "TimGM6mb.sf2")  # preferred first
DRUM_CHANNEL = 9  # MIDI channel 10
PITCHED_CHANNEL = 0
MAX_TAIL = 4.0  # seconds of release rendered at most after the key is let go
SILENCE = 1e-4  # a release ends when 10 ms windows stay below this peak (-80 dBFS)
ENGINE_GAIN = 0.5
FLUID_BLOCK = 64  # FluidSynth renders (and takes events) in blocks of this many samples

# corpus instrument -> GM program (0-based). Chosen by ear for the role the synth voice plays.
GM_PROGRAMS: dict[str, int] = {
    "acid_bass": 38,  # Synth Bass 1
    "sub_bass": 39,  # Synth Bass 2
    "808_bass": 38,
    "reese_bass": 39,
    "fm_bass": 38,
    "synth_bass": 38,
    "upright_bass": 32,  # Acoustic Bass
    "electric_piano": 4,  # Electric Piano 1 (Rhodes)
    "piano": 0,  # Acoustic Grand Piano
    "organ": 16,  # Drawbar Organ
    "supersaw_pad": 90,  # Pad 3 (polysynth)
    "warm_pad": 89,  # Pad 2 (warm)
    "strings": 48,  # String Ensemble 1
    "chord_stab": 62,  # Synth Brass 1
    "synth_pluck": 84,  # Lead 5 (charang)
    "nylon_guitar": 24,  # Acoustic Guitar (nylon)
    "clean_guitar": 27,  # Electric Guitar (clean)
    "fm_bell": 14,  # Tubular Bells
    "mallet": 12,  # Marimba
    "saw_lead": 81,  # Lead 2 (sawtooth)
    "square_lead": 80,  # Lead 1 (square)
    "soft_lead": 73,  # Flute
}

# corpus drum kit -> GM drum kit preset in bank 128
GM_DRUM_KITS: dict[str, int] = {
    "909_drums": 24,  # Electronic
    "808_drums": 25,  # TR-808
    "acoustic_drums": 8,  # Room
    "break_drums": 16,  # Power
    "trap_drums": 25,
    "brush_drums": 40,  # Brush
    "lofi_drums": 32,  # Jazz
}


def find_soundfont(name: str | Path | None = None) -> Path:
    """The soundfont file to play: `name` as a path, a file name in the system's soundfont
    folders, or (None) the first of ``SOUNDFONTS`` installed. One-line error when there is none."""
    if name is not None:
        path = Path(name)
        candidates = [path] + ([d / path for d in SOUNDFONT_DIRS] if not path.is_absolute() else [])
    else:
        candidates = [d / f for f in SOUNDFONTS for d in SOUNDFONT_DIRS]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    wanted = str(name) if name is not None else " or ".join(SOUNDFONTS)
    raise FileNotFoundError(
        f"no soundfont {wanted} (looked in {', '.join(map(str, SOUNDFONT_DIRS))}): "
        "apt-get install fluid-soundfont-gm, or pass a .sf2 path"
    )


def midi_velocity(velocity: float) -> int:
    """0..1 velocity step -> MIDI velocity 40..127 (compressed: the renderer scales by velocity too)."""
    return int(round(40 + 87 * min(max(velocity, 0.0), 1.0)))


def release_end(tail: np.ndarray, sample_rate: int) -> int:
    """Samples of `tail` [n] up to the last 10 ms window whose peak reaches ``SILENCE``."""
    win = max(1, sample_rate // 100)
    n = len(tail) // win * win
    if n == 0:
        return len(tail)
    loud = np.flatnonzero(np.abs(tail[:n]).reshape(-1, win).max(axis=1) >= SILENCE)
    return 0 if len(loud) == 0 else int((loud[-1] + 1) * win)


@attrs.frozen
class SampledInstruments:
    """One soundfont at one sample rate; ``sound`` renders a note like a synth voice does.

    Each instance has its own FluidSynth engine, made at its first note: an example renders with a
    fresh one, so the same notes in the same order give the same audio (an engine carries a little
    state from note to note)."""

    soundfont: Path
    sample_rate: int
    _engines: dict = attrs.field(factory=dict, eq=False, repr=False)

    def sound(self, instrument: str, pitch: int, gate: float, velocity: float) -> np.ndarray:
        """float32 [samples]: the note held for `gate` seconds (0: a drum hit), then its release."""
        if not self._engines:
            self._engines["fluid"] = _engine(str(self.soundfont), self.sample_rate)
        synth, font = self._engines["fluid"]
        if instrument in GM_DRUM_KITS:
            channel, bank, preset = DRUM_CHANNEL, 128, GM_DRUM_KITS[instrument]
        elif instrument in GM_PROGRAMS:
            channel, bank, preset = PITCHED_CHANNEL, 0, GM_PROGRAMS[instrument]
        else:
            raise ValueError(f"no soundfont program for instrument {instrument!r}")
        if synth.program_select(channel, font, bank, preset) != 0:
            raise ValueError(f"{self.soundfont.name} has no preset {bank}:{preset} for {instrument!r}")
        synth.noteon(channel, int(pitch), midi_velocity(velocity))
        held = _float_samples(synth, _whole_blocks(gate * self.sample_rate))
        synth.noteoff(channel, int(pitch))
        tail = _float_samples(synth, _whole_blocks(MAX_TAIL * self.sample_rate))
        synth.system_reset()  # all voices off and every channel as new: the next note starts from silence
        mono = (np.concatenate([held, tail], axis=1).mean(axis=0) / ENGINE_GAIN).astype(np.float32)
        return mono[: held.shape[1] + release_end(mono[held.shape[1] :], self.sample_rate)]


def _whole_blocks(samples: float) -> int:
    """`samples` rounded up to whole FluidSynth blocks, so every note starts on a block boundary
    (an event lands at the next block: a note starting mid-block would shift with what came before)."""
    return FLUID_BLOCK * math.ceil(round(samples) / FLUID_BLOCK)


def _float_samples(synth, n: int) -> np.ndarray:
    """[2, n] float32 from FluidSynth (float output: no dither, so a rendering repeats exactly)."""
    import ctypes

    import fluidsynth

    out = np.zeros((2, n), dtype=np.float32)
    if n > 0:
        write = fluidsynth._fl.fluid_synth_write_float
        write.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                          ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        left, right = out[0].ctypes.data, out[1].ctypes.data
        if write(synth.synth, n, left, 0, 1, right, 0, 1) != 0:
            raise RuntimeError("FluidSynth failed to render")
    return out


def _engine(soundfont: str, sample_rate: int):  # -> (fluidsynth.Synth, font id)
    try:
        import fluidsynth
    except ImportError as e:  # the module, or libfluidsynth under it
        raise RuntimeError(
            f"sampled instruments need pyfluidsynth and libfluidsynth ({e}): "
            "pip install 'lmdm[sampled]' and apt-get install libfluidsynth3"
        ) from None
    synth = fluidsynth.Synth(samplerate=float(sample_rate), gain=ENGINE_GAIN)
    synth.setting("synth.reverb.active", 0)
    synth.setting("synth.chorus.active", 0)
    font = synth.sfload(soundfont)
    if font < 0:
        raise ValueError(f"{soundfont} is not a soundfont FluidSynth can read")
    return synth, font
