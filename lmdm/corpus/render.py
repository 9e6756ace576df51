"""Score -> audio: notes into four stems, stem effects, levels, and one master gain.

A note sounds through a numpy voice (``instruments``, ``drums``) or, for a sampled corpus,
through a soundfont program (``sampled``); everything after the note is the same.

How the stems relate to the mix (exactly):

1. Every note is rendered by its instrument and added to its stem (drums, bass, harmony, lead).
   Notes with the same instrument, pitch, gate (to 10 ms) and velocity step (1/8) share one
   rendering; the level is then scaled by the note's exact velocity.
2. The drum stem is peak-normalised and softly saturated (part of the drum sound).
3. Per stem: reverb send (convolution) and, on the lead, an echo; both linear. Then one gain
   per stem sets its loudness to ``Mixing.stem_level_db`` (measured on the dry stem).
4. The pre-roll is cut off, and a single master gain is applied to every stem, chosen so
   neither the mix nor any stem peaks above -1 dBFS. There is no limiter after this.
5. ``mix = ((drums + bass) + harmony) + lead`` in float32, so the mix equals the stem sum
   bit for bit (in memory; the FLAC files add 16-bit rounding to each file).
"""

from __future__ import annotations

import zlib

import numpy as np

from lmdm.corpus.drums import DRUM_KITS, render_drum
from lmdm.corpus.effects import echo, reverb, reverb_impulse
from lmdm.corpus.instruments import PITCHED_VOICES
from lmdm.corpus.sampled import SampledInstruments
from lmdm.corpus.score import STEM_NAMES, Note, Score
from lmdm.corpus.synth import soft_clip
from lmdm.corpus.theory import midi_to_hz

HEADROOM_DB = 1.0
GATE_STEP = 0.01  # seconds; gates are rounded to this for sharing renderings
VELOCITY_STEPS = 8  # timbre changes in this many velocity steps
REFERENCE_RMS = 0.1  # level of a stem at 0 dB in ``stem_level_db``, before the master gain


RenderKey = tuple[str, int, int, float]  # (instrument, pitch, gate in GATE_STEPs, velocity step)


def note_rng(seed: int, key: tuple[object, ...]) -> np.random.Generator:
    """Noise source for one rendering, reproducible from the example seed and the note key."""
    return np.random.default_rng([seed, zlib.crc32(repr(key).encode())])


def velocity_step(velocity: float) -> float:
    return max(1, round(velocity * VELOCITY_STEPS)) / VELOCITY_STEPS


def render_key(note: Note) -> RenderKey:
    """The note's identity for sharing renderings: (instrument, pitch, gate in 10 ms, velocity step)."""
    gate = 0 if note.instrument in DRUM_KITS else max(1, round(note.duration / GATE_STEP))
    return (note.instrument, note.pitch, gate, velocity_step(note.velocity))


def render_sound(key: RenderKey, sample_rate: int, seed: int, sampled: SampledInstruments | None = None) -> np.ndarray:
    """One note's sound at unit level (velocity only shapes the timbre here): by the numpy voices,
    or with `sampled` by a soundfont program (lmdm.corpus.sampled)."""
    instrument, pitch, gate_steps, velocity = key
    if sampled is not None:
        return sampled.sound(instrument, pitch, gate_steps * GATE_STEP, velocity)
    rng = note_rng(seed, key)
    if instrument in DRUM_KITS:
        return render_drum(instrument, pitch, velocity, sample_rate, rng)
    voice = PITCHED_VOICES[instrument]
    return voice(midi_to_hz(pitch), gate_steps * GATE_STEP, velocity, sample_rate, rng).astype(np.float32)


def note_start_sample(note: Note, sample_rate: int) -> int:
    """Sample (from the example start) where a note's sound begins."""
    return int(round(note.start * sample_rate))


def place_notes(
    notes: tuple[Note, ...], length: int, preroll: int, sample_rate: int, seed: int,
    sampled: SampledInstruments | None = None,
) -> dict[str, np.ndarray]:
    """Dry stems of ``length`` samples, of which the first ``preroll`` come before the example."""
    stems = {name: np.zeros(length, dtype=np.float32) for name in STEM_NAMES}
    sounds: dict[RenderKey, np.ndarray] = {}
    for note in notes:
        key = render_key(note)
        sound = sounds.get(key)
        if sound is None:
            sound = sounds[key] = render_sound(key, sample_rate, seed, sampled)
        start = note_start_sample(note, sample_rate) + preroll
        begin, end = max(start, 0), min(start + len(sound), length)
        if end > begin:
            stems[note.stem][begin:end] += np.float32(note.velocity) * sound[begin - start : end - start]
    return stems


def loud_rms(signal: np.ndarray, frame: int) -> float:
    """RMS over the louder half of the non-silent frames (so a part that plays half the time is
    judged by how loud it is when it plays)."""
    usable = len(signal) // frame * frame
    if usable == 0:
        return 0.0
    energy = np.mean(signal[:usable].astype(np.float64).reshape(-1, frame) ** 2, axis=1)
    energy = energy[energy > 1e-10]
    if len(energy) == 0:
        return 0.0
    top = np.sort(energy)[len(energy) // 2 :]
    return float(np.sqrt(np.mean(top)))


def saturate_drums(stems: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Glue the drum bus: normalise its peak, then a gentle tanh that rounds off transients."""
    peak = float(np.abs(stems["drums"]).max())
    if peak == 0:
        return stems
    return stems | {"drums": soft_clip(stems["drums"] / np.float32(peak), 2.0)}


def stem_gains(stems: dict[str, np.ndarray], level_db: dict[str, float], sample_rate: int) -> dict[str, float]:
    """Gains that bring each (dry) stem to ``REFERENCE_RMS`` x its level in dB."""
    frame = max(1, sample_rate // 25)
    gains = {}
    for name, signal in stems.items():
        rms = loud_rms(signal, frame)
        gains[name] = REFERENCE_RMS * 10.0 ** (level_db.get(name, 0.0) / 20.0) / rms if rms > 0 else 0.0
    return gains


def apply_effects(stems: dict[str, np.ndarray], score: Score, sample_rate: int, seed: int) -> dict[str, np.ndarray]:
    """Reverb sends on every stem that has one, and the echo on the lead (both linear)."""
    mixing = score.mixing
    out = dict(stems)
    wet_names = [n for n in STEM_NAMES if mixing.reverb_send.get(n, 0.0) > 0 and np.any(stems[n])]
    if wet_names:
        impulse = reverb_impulse(mixing.reverb_seconds, sample_rate // 2, note_rng(seed, ("reverb",)))
        wet = reverb(np.stack([stems[n] for n in wet_names]), impulse)
        for name, tail in zip(wet_names, wet):
            out[name] = stems[name] + np.float32(mixing.reverb_send[name]) * tail
    if mixing.echo_send > 0:
        delay = int(round(mixing.echo_seconds * sample_rate))
        out["lead"] = out["lead"] + np.float32(mixing.echo_send) * echo(stems["lead"], delay, mixing.echo_feedback)
    return out


def sum_stems(stems: dict[str, np.ndarray]) -> np.ndarray:
    """The mix: stems added in ``STEM_NAMES`` order, in float32."""
    mix = np.zeros_like(stems[STEM_NAMES[0]])
    for name in STEM_NAMES:
        mix = mix + stems[name]
    return mix


def master(stems: dict[str, np.ndarray], headroom_db: float = HEADROOM_DB) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Scale all stems by one gain so nothing peaks above ``-headroom_db`` dBFS; return (mix, stems)."""
    ceiling = 10.0 ** (-headroom_db / 20.0)
    peak = max([float(np.abs(sum_stems(stems)).max())] + [float(np.abs(s).max()) for s in stems.values()])
    gain = np.float32(ceiling / peak) if peak > 0 else np.float32(1.0)
    # float32 rounding can push the product a hair over the ceiling: shave until it is not.
    while peak > 0:
        scaled = {name: (s * gain).astype(np.float32) for name, s in stems.items()}
        mix = sum_stems(scaled)
        if max(float(np.abs(mix).max()), max(float(np.abs(s).max()) for s in scaled.values())) <= ceiling:
            return mix, scaled
        gain = np.float32(gain * 0.9999)
    return sum_stems(stems), dict(stems)


def render_score(
    score: Score, sample_rate: int, seed: int, sampled: SampledInstruments | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Render a score to (mix, stems), each ``round(score.seconds * sample_rate)`` samples; the
    notes by the numpy voices, or by `sampled`'s soundfont."""
    n = int(round(score.seconds * sample_rate))
    pre = int(round(score.preroll * sample_rate))
    dry = saturate_drums(place_notes(score.notes, pre + n, pre, sample_rate, seed, sampled))
    # Levels are measured on the dry stems including the pre-roll, so a stem whose notes all
    # fall in the pre-roll is judged by those notes, not by the quiet tail that reaches the example.
    gains = stem_gains(dry, score.mixing.stem_level_db, sample_rate)
    wet = apply_effects(dry, score, sample_rate, seed)
    leveled = {name: (wet[name][pre:] * np.float32(gains[name])).astype(np.float32) for name in STEM_NAMES}
    return master(leveled)
