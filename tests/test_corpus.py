"""Tests for the procedural music corpus (lmdm.corpus) and the progress bar (lmdm.progress)."""

from __future__ import annotations

import functools
import io
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmdm.corpus import STEM_NAMES, STYLE_NAMES, CorpusReader, Example, WriteReport, make_example, write_corpus
from lmdm.corpus.annotate import ARRAY_NAMES, frame_loudness, hop_size
from lmdm.corpus.arrange import PADS, draw_song, part_rng
from lmdm.corpus.caption import STYLE_WORDS, fix_articles
from lmdm.corpus.cli import main
from lmdm.corpus.drums import DRUM_KITS
from lmdm.corpus.effects import convolve, double_rate, echo, halve_rate, next_fast_length, reverb_impulse
from lmdm.corpus.instruments import PITCHED_VOICES
from lmdm.corpus.patterns import BASS_PATTERNS, COMP_PATTERNS, DRUM_PATTERNS, ARPEGGIOS
from lmdm.corpus.render import (
    HEADROOM_DB,
    master,
    note_start_sample,
    place_notes,
    render_key,
    render_sound,
    sum_stems,
)
from lmdm.corpus.score import KICK, SECTION_NAMES, Note
from lmdm.corpus.styles import STYLES
from lmdm.corpus.synth import adsr, filtered_osc, karplus_strong
from lmdm.corpus.theory import (
    SCALES,
    chord_pitch_classes,
    close_voicings,
    harmony_scale,
    nearest_in_set,
    scale_pitch_classes,
    voice_lead,
)
from lmdm.corpus.writer import example_seed
from lmdm.progress import advance, format_duration, format_postfix, progress, shown

SR = 16000
FPS = 25.0
HOP = 640
CEILING = 10.0 ** (-HEADROOM_DB / 20.0)


@functools.lru_cache(maxsize=None)
def example(seed: int, seconds: float = 6.0, style: str | None = None) -> Example:
    """Examples are pure functions of their arguments, so tests may share them."""
    return make_example(seed, seconds, style=style)


def pitch_class(name: str) -> int:
    return ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B").index(name)


def peak_frequency(signal: np.ndarray, expected: float, sample_rate: int = SR) -> float:
    """Frequency of the strongest spectral peak within +-6 % of ``expected``."""
    n = len(signal)
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(n), n=8 * n))
    freqs = np.fft.rfftfreq(8 * n, 1.0 / sample_rate)
    band = (freqs > expected * 0.94) & (freqs < expected * 1.06)
    return float(freqs[np.argmax(np.where(band, spectrum, 0.0))])


def circular_distance(phase: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    """Distance between phases in [0, 1) and the fractional part of ``cycles``, wrapping at 1."""
    d = np.abs(phase - cycles % 1.0)
    return np.minimum(d, 1.0 - d)


def cents(f: float, reference: float) -> float:
    return 1200.0 * np.log2(f / reference)


# ---------------------------------------------------------------- theory


def test_chords_are_built_from_the_scale() -> None:
    assert chord_pitch_classes(0, "major", 0, "triad") == (0, 4, 7)
    assert chord_pitch_classes(0, "major", 4, "seventh") == (7, 11, 2, 5)  # G7 in C major
    assert chord_pitch_classes(9, "minor", 0, "triad") == (9, 0, 4)  # A minor
    assert chord_pitch_classes(2, "dorian", 3, "triad") == (7, 11, 2)  # IV of D dorian is G major
    # Pentatonic songs borrow chords from their parent mode.
    assert harmony_scale("minor_pentatonic") == "minor"
    assert chord_pitch_classes(9, "minor_pentatonic", 5, "triad") == chord_pitch_classes(9, "minor", 5, "triad")


def test_voicings_fit_the_range_and_voice_leading_moves_little() -> None:
    for voicing in close_voicings((0, 4, 7), 52, 76):
        assert 52 <= voicing[0] and voicing[-1] <= 76
        assert sorted(p % 12 for p in voicing) == [0, 4, 7]
        assert list(voicing) == sorted(voicing)
    c_major = (60, 64, 67)
    # From C major, the nearest F major is the second inversion C-F-A.
    assert voice_lead((5, 9, 0), c_major, 52, 76) == (60, 65, 69)
    with pytest.raises(ValueError):
        voice_lead((0, 4, 7), None, 60, 62)


def test_nearest_in_set() -> None:
    assert nearest_in_set(61, {0, 4, 7}) == 60
    assert nearest_in_set(66, {0, 4, 7}) == 67
    assert nearest_in_set(62, {1, 3}) == 61  # tie goes down


# ---------------------------------------------------------------- synthesis


def test_adsr_shape() -> None:
    env = adsr(0.5, 0.01, 0.2, 0.6, 0.3, SR)
    assert len(env) == int(0.8 * SR)
    assert env[0] == 0.0 and env[-1] == 0.0
    assert env.max() <= 1.0 + 1e-6
    assert abs(env[int(0.45 * SR)] - 0.6) < 0.01  # settled at the sustain level


@pytest.mark.parametrize("freq", [82.4, 220.0, 440.0, 1046.5])
def test_karplus_strong_is_in_tune(freq: float) -> None:
    excitation = np.random.default_rng(0).uniform(-1, 1, 200).astype(np.float32)
    tone = karplus_strong(freq, SR, SR, excitation, 2.0)
    assert abs(cents(peak_frequency(tone[2000:12000], freq), freq)) < 3.0


@pytest.mark.parametrize("name", sorted(PITCHED_VOICES))
def test_every_pitched_voice_is_finite_and_in_tune(name: str) -> None:
    voice = PITCHED_VOICES[name]
    pitches = (40, 52) if "bass" in name else (57, 69)
    for pitch in pitches:
        freq = 440.0 * 2 ** ((pitch - 69) / 12)
        sound = voice(freq, 0.8, 0.8, SR, np.random.default_rng(1))
        assert sound.dtype == np.float32 and np.all(np.isfinite(sound))
        assert np.abs(sound).max() > 0.05
        # Detuned voices beat, so allow a little; a wrong octave or semitone is far outside.
        assert abs(cents(peak_frequency(sound[1600:11200], freq), freq)) < 25.0


@pytest.mark.parametrize("kit", sorted(DRUM_KITS))
def test_every_drum_sound_is_finite_and_starts_at_once(kit: str) -> None:
    for pitch, voice in DRUM_KITS[kit].items():
        sound = voice(0.8, SR, np.random.default_rng(2))
        assert np.all(np.isfinite(sound)) and np.abs(sound).max() > 0.05, (kit, pitch)
        head = np.sqrt(np.mean(sound[: SR // 50] ** 2))  # first 20 ms
        assert head > 0.2 * np.sqrt(np.mean(sound**2)), (kit, pitch)


def test_filtered_oscillator_has_no_aliasing() -> None:
    # A 3 kHz saw has two harmonics below 7.2 kHz; nothing may show up above that.
    tone = filtered_osc("saw", 3000.0, 20000.0, 0.7, SR, SR)
    spectrum = np.abs(np.fft.rfft(tone * np.hanning(len(tone))))
    freqs = np.fft.rfftfreq(len(tone), 1.0 / SR)
    assert spectrum[freqs > 7300].max() < 1e-3 * spectrum.max()
    # And the low-pass works: a cutoff at the fundamental removes most of the upper harmonics.
    bright = filtered_osc("saw", 110.0, 8000.0, 0.7, SR, SR)
    dark = filtered_osc("saw", 110.0, 120.0, 0.7, SR, SR)
    high = np.fft.rfftfreq(SR, 1.0 / SR) > 1000
    energy = lambda x: np.sum(np.abs(np.fft.rfft(x))[high] ** 2) / np.sum(np.abs(np.fft.rfft(x)) ** 2)
    assert energy(dark) < 0.01 * energy(bright)


# ---------------------------------------------------------------- effects


def test_echo_matches_the_per_sample_recursion() -> None:
    x = np.random.default_rng(3).standard_normal(500).astype(np.float32)
    delay, feedback = 37, 0.45
    slow = np.zeros_like(x)
    for n in range(delay, len(x)):
        slow[n] = x[n - delay] + feedback * slow[n - delay]
    np.testing.assert_allclose(echo(x, delay, feedback), slow, rtol=1e-5, atol=1e-5)


def test_convolve_matches_numpy_and_impulse_has_unit_energy() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 300)).astype(np.float32)
    h = rng.standard_normal(50).astype(np.float32)
    expected = np.stack([np.convolve(row, h)[:300] for row in x])
    np.testing.assert_allclose(convolve(x, h), expected, atol=1e-4)
    impulse = reverb_impulse(1.5, 8000, rng)
    assert abs(np.sum(impulse.astype(np.float64) ** 2) - 1.0) < 1e-4
    assert next_fast_length(1025) == 1080 and next_fast_length(1024) == 1024


def test_rate_halving_round_trip_keeps_low_frequencies() -> None:
    t = np.arange(1001) / SR
    x = np.sin(2 * np.pi * 200 * t).astype(np.float32)[None]
    y = double_rate(halve_rate(x), 1001)
    assert y.shape == (1, 1001)
    assert np.abs(y - x)[0, 10:-10].max() < 0.02


# ---------------------------------------------------------------- rendering


def test_place_notes_matches_rendering_each_note_alone() -> None:
    """The note cache is only a speed-up: placing notes one by one gives the same stems."""
    notes = (
        Note(0.0, 0.2, 60, 0.8, "electric_piano", "harmony"),
        Note(0.25, 0.2, 60, 0.8, "electric_piano", "harmony"),  # same rendering, reused
        Note(0.5, 0.2, 60, 0.5, "electric_piano", "harmony"),
        Note(-0.1, 0.1, KICK, 0.9, "909_drums", "drums"),  # starts in the pre-roll
        Note(0.3, 0.4, 36, 0.7, "sub_bass", "bass"),
    )
    length, preroll = SR, 1600
    fast = place_notes(notes, length, preroll, SR, seed=5)
    slow = {name: np.zeros(length, dtype=np.float32) for name in STEM_NAMES}
    for note in notes:
        sound = note.velocity * render_sound(render_key(note), SR, 5)
        start = note_start_sample(note, SR) + preroll
        stop = min(start + len(sound), length)
        slow[note.stem][start:stop] += sound[: stop - start]
    for name in STEM_NAMES:
        np.testing.assert_allclose(fast[name], slow[name], atol=1e-6)
    # The sound starts at the note's sample (envelopes start from 0, so allow one sample).
    first = np.flatnonzero(fast["bass"])[0]
    start = preroll + note_start_sample(notes[4], SR)
    assert start <= first <= start + 1


def test_master_keeps_stems_summing_to_the_mix_and_under_the_ceiling() -> None:
    rng = np.random.default_rng(6)
    stems = {name: (3.0 * rng.standard_normal(1000)).astype(np.float32) for name in STEM_NAMES}
    mix, scaled = master(stems)
    assert np.array_equal(mix, sum_stems(scaled))
    assert np.abs(mix).max() <= CEILING
    assert max(np.abs(s).max() for s in scaled.values()) <= CEILING
    ratios = [scaled[n][0] / stems[n][0] for n in STEM_NAMES]
    assert np.allclose(ratios, ratios[0], rtol=1e-5)  # one gain for everything


# ---------------------------------------------------------------- whole examples


def test_same_seed_same_example_and_different_seed_different_example() -> None:
    a, b = make_example(11, 3.0), make_example(11, 3.0)
    assert np.array_equal(a.audio, b.audio)
    for name in STEM_NAMES:
        assert np.array_equal(a.stems[name], b.stems[name])
    for name in ARRAY_NAMES:
        assert np.array_equal(getattr(a.annotations, name), getattr(b.annotations, name))
    assert a.caption == b.caption and a.attributes == b.attributes and a.notes == b.notes
    c = make_example(12, 3.0)
    assert not np.array_equal(a.audio, c.audio)


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        make_example(-1, 2.0)
    with pytest.raises(ValueError):
        make_example(0, 2.0, style="polka")
    with pytest.raises(ValueError):
        make_example(0, 2.0, frame_rate=24.0)  # 16000 / 24 is not a whole hop
    with pytest.raises(ValueError):
        make_example(0, 0.0)


def check_example(ex: Example, seconds: float, sample_rate: int = SR) -> None:
    """Invariants every example must satisfy."""
    hop = hop_size(sample_rate, FPS)
    frames = max(1, round(seconds * FPS))
    a = ex.annotations
    assert len(ex.audio) == frames * hop and ex.audio.dtype == np.float32
    assert ex.attributes.seconds == frames * hop / sample_rate and ex.sample_rate == sample_rate
    assert all(len(getattr(a, name)) == frames for name in ARRAY_NAMES)
    assert a.chroma.shape == (frames, 12)
    # No NaN, no clipping, -1 dB headroom; stems add up to the mix exactly.
    assert np.all(np.isfinite(ex.audio))
    assert np.abs(ex.audio).max() <= CEILING
    assert np.array_equal(ex.audio, sum_stems(ex.stems))
    assert list(ex.stems) == list(STEM_NAMES)
    # Annotation ranges.
    assert np.all((a.onsets >= 0) & (a.onsets <= 1)) and np.all((a.drum_onsets <= a.onsets))
    assert np.all((a.beat_phase >= 0) & (a.beat_phase < 1)) and np.all((a.bar_phase >= 0) & (a.bar_phase < 1))
    np.testing.assert_allclose(a.loudness_db, frame_loudness(ex.audio, hop))
    assert 0 <= a.section.min() and a.section.max() < len(SECTION_NAMES)
    # The example starts on a downbeat and phases follow the tempo.
    beats = np.arange(frames) / FPS * ex.attributes.tempo / 60.0
    assert circular_distance(a.beat_phase, beats).max() < 1e-5
    assert circular_distance(a.bar_phase, beats / 4.0).max() < 1e-5
    # Everything pitched comes from the key: chroma from the harmony scale, melody from the scale.
    tonic = pitch_class(ex.attributes.key)
    allowed = scale_pitch_classes(tonic, harmony_scale(ex.attributes.scale))
    sounding = set(np.flatnonzero(a.chroma.max(axis=0) > 0))
    assert sounding <= allowed, (sounding, allowed)
    if seconds >= 4.0:  # a bar even at 60 BPM: some chord has been played
        assert sounding
    melody_classes = {int(p) % 12 for p in a.melody[a.melody > 0]}
    assert melody_classes <= scale_pitch_classes(tonic, ex.attributes.scale)
    # The caption names the style and the tempo.
    text = ex.caption.lower()
    assert any(word in text for word in STYLE_WORDS[ex.attributes.style]), ex.caption
    assert str(ex.attributes.tempo) in ex.caption
    assert 60 <= ex.attributes.tempo <= 180


@pytest.mark.parametrize("style", STYLE_NAMES)
def test_each_style_renders(style: str) -> None:
    ex = example(100 + STYLE_NAMES.index(style), 6.0, style)
    assert ex.attributes.style == style
    lo, hi = STYLES[style].tempo
    assert lo <= ex.attributes.tempo <= hi
    check_example(ex, 6.0)
    # Stems are silent exactly when no instrument of theirs sounds.
    for name in STEM_NAMES:
        if not any(n.stem == name for n in ex.notes):
            assert not ex.stems[name].any(), name
    assert ex.stems["harmony"].any()  # every section has harmony


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(min_value=0, max_value=2**40),
    style=st.sampled_from(STYLE_NAMES + (None,)),
    seconds=st.floats(min_value=0.5, max_value=5.0),
)
def test_invariants_hold_for_any_seed_style_and_length(seed: int, style: str | None, seconds: float) -> None:
    check_example(make_example(seed, seconds, style=style), seconds)


def test_other_sample_rates_work() -> None:
    ex = make_example(8, 2.0, style="pop", sample_rate=24000)
    check_example(ex, 2.0, sample_rate=24000)


def test_all_style_references_exist() -> None:
    for style in STYLES.values():
        assert set(style.drum_patterns) <= set(DRUM_PATTERNS)
        assert set(style.bass_patterns) <= set(BASS_PATTERNS) | {"acid", "follow_kick"}
        assert set(style.comp_patterns) <= set(COMP_PATTERNS) | set(ARPEGGIOS)
        assert set(style.drum_kits) <= set(DRUM_KITS)
        for instrument in style.basses + style.harmony + style.leads + PADS:
            assert instrument in PITCHED_VOICES
        assert set(style.scales) <= set(SCALES)
        assert 60 <= style.tempo[0] <= style.tempo[1] <= 180
        assert all(beats % 4 == 0 for beats in style.chord_beats)  # chords change on bar lines
    assert len(STYLES) >= 6
    assert len(PITCHED_VOICES) + len(DRUM_KITS) >= 8


def test_style_choice_is_spread_over_styles() -> None:
    styles = {make_example(seed, 0.5).attributes.style for seed in range(40)}
    assert len(styles) >= 6


def test_drum_onsets_line_up_with_drum_energy() -> None:
    """Energy in the drum stem jumps at annotated drum onsets and not half a beat later."""
    ex = example(21, 8.0, "house")
    drums = ex.stems["drums"].astype(np.float64)
    hits = [note_start_sample(n, SR) for n in ex.notes if n.stem == "drums" and 400 <= n.start * SR < len(drums) - 400]
    assert len(hits) > 20

    def jump_db(at: int) -> float:
        before = np.mean(drums[at - 160 : at] ** 2) + 1e-12
        after = np.mean(drums[at : at + 160] ** 2) + 1e-12
        return 10 * np.log10(after / before)

    on = np.median([jump_db(s) for s in hits])
    # Control: the same positions shifted by a third of a beat rarely hold a hit.
    shift = int(SR * 60.0 / ex.attributes.tempo / 3)
    off = np.median([jump_db(s + shift) for s in hits if s + shift + 160 < len(drums)])
    assert on > 6.0 and on > off + 6.0, (on, off)
    # Frame annotations hold the same onsets.
    frames = {s // HOP for s in hits}
    assert frames <= set(np.flatnonzero(ex.annotations.drum_onsets > 0))


def test_strong_kicks_fall_on_beats_in_four_on_the_floor() -> None:
    ex = example(22, 8.0, "techno")
    a = ex.annotations
    kicks = [n for n in ex.notes if n.pitch == KICK and n.stem == "drums" and n.velocity > 0.8 and n.start >= 0]
    assert kicks
    beat_per_frame = ex.attributes.tempo / 60.0 / FPS
    for note in kicks:
        frame = note_start_sample(note, SR) // HOP
        if frame < a.frames:
            # The beat starts inside the onset frame: at the frame start the phase is just below 1 (or 0).
            phase = a.beat_phase[frame]
            assert phase <= 1e-4 or phase >= 1 - beat_per_frame - 1e-4, phase


def test_melody_annotation_is_the_pitch_of_the_lead_stem() -> None:
    checked = 0
    for seed in range(40):
        ex = example(seed, 8.0)
        melody = ex.annotations.melody
        if not melody.any():
            continue
        lead = ex.stems["lead"]
        # Runs of at least 5 frames on one pitch: the lead stem's spectrum peaks at that pitch.
        f = 0
        while f < len(melody):
            g = f
            while g < len(melody) and melody[g] == melody[f]:
                g += 1
            if melody[f] > 0 and g - f >= 5:
                freq = 440.0 * 2 ** ((melody[f] - 69) / 12)
                segment = lead[(f + 1) * HOP : (g - 1) * HOP]
                spectrum = np.abs(np.fft.rfft(segment * np.hanning(len(segment))))
                freqs = np.fft.rfftfreq(len(segment), 1.0 / SR)
                near = spectrum[np.abs(freqs - freq) < 0.03 * freq].max()
                # Energy at the annotated pitch stands well above the spectrum's median.
                assert near > 10 * np.median(spectrum), (seed, melody[f])
                checked += 1
            f = g
        if checked >= 10:
            break
    assert checked >= 10
    # Frames with a melody have a louder lead than frames without.
    ex = next(example(s, 8.0) for s in range(40) if 0.2 < np.mean(example(s, 8.0).annotations.melody > 0) < 0.9)
    rms = np.sqrt(np.mean(ex.stems["lead"].reshape(-1, HOP) ** 2, axis=1)) + 1e-9
    on, off = ex.annotations.melody > 0, ex.annotations.melody == 0
    assert np.mean(20 * np.log10(rms[on])) > np.mean(20 * np.log10(rms[off])) + 6


def test_instruments_listed_are_those_heard() -> None:
    for seed in range(30):
        ex = example(seed, 4.0)
        heard = {n.instrument for n in ex.notes if n.start < ex.attributes.seconds and n.end > 0}
        assert set(ex.attributes.instruments) == heard
    no_drums = next(s for s in range(200) if draw_song(s, STYLES["ambient"]).drum_kit is None)
    ex = make_example(no_drums, 4.0, style="ambient")
    assert not ex.stems["drums"].any() and not ex.annotations.drum_onsets.any()


def test_captions_vary_and_are_reproducible() -> None:
    captions = {example(seed, 4.0).caption for seed in range(30)}
    assert len(captions) == 30
    assert make_example(3, 2.0).caption == make_example(3, 2.0).caption
    rng_a, rng_b = part_rng(7, "lead"), part_rng(7, "drums")
    assert rng_a.integers(1 << 30) != rng_b.integers(1 << 30)  # parts draw from separate streams


def test_captions_use_the_right_article() -> None:
    assert fix_articles("over a unhurried groove, a euphoric track, a 80s beat, a dark one") == (
        "over an unhurried groove, a euphoric track, an 80s beat, a dark one"
    )
    assert fix_articles("in A minor") == "in A minor"  # key names are not articles


def test_short_captions_keep_the_captions_style_and_tempo_and_nothing_it_lacks() -> None:
    import re

    from lmdm.corpus.caption import STYLE_WORDS, short_caption

    rng, forms = np.random.default_rng(0), set()
    for seed in range(60):
        ex = make_example(seed, 1.0)
        short = short_caption(ex.caption, rng)
        forms.add(re.sub(r"\d+", "N", short))
        assert len(short) < len(ex.caption) or short == ex.caption
        assert any(w in short for w in STYLE_WORDS[ex.attributes.style])  # its own style, never another's
        tempo = re.search(r"(\d+) bpm", short)
        assert tempo is None or int(tempo.group(1)) == ex.attributes.tempo
    assert len(forms) > 20  # varied: style alone, with tempo, mood or an instrument
    assert short_caption("a quiet piece", rng) == "a quiet piece"
    assert short_caption("deep house, 120 BPM", np.random.default_rng(1)) in {"deep house", "deep house at 120 bpm", "deep house 120 bpm"}


# ---------------------------------------------------------------- corpus on disk


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WriteReport]:
    root = tmp_path_factory.mktemp("corpus")
    report = write_corpus(root, hours=4 * 3.0 / 3600, seed=3, seconds_per_example=3.0, workers=1, progress=False)
    return root, report


def test_write_corpus_files_and_index(tiny_corpus: tuple[Path, WriteReport]) -> None:
    root, report = tiny_corpus
    assert report.examples == 4 and report.written == 4
    assert abs(report.audio_hours - 12.0 / 3600) < 1e-9
    names = sorted(p.name for p in root.iterdir())
    for i in range(4):
        assert {f"{i:06d}.flac", f"{i:06d}.stems.flac", f"{i:06d}.npz"} <= set(names)
    records = [json.loads(line) for line in (root / "index.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["000000", "000001", "000002", "000003"]
    assert [r["style"] for r in records] == list(STYLE_NAMES[:4])  # styles rotate
    assert all(r["split"] in ("train", "valid", "test") for r in records)
    meta = json.loads((root / "corpus.json").read_text())
    assert meta["stems"] == list(STEM_NAMES) and meta["sample_rate"] == SR


def test_reader_round_trips_what_was_written(tiny_corpus: tuple[Path, WriteReport]) -> None:
    root, _ = tiny_corpus
    reader = CorpusReader(root)
    assert len(reader) == 4
    entry = reader.entry("000002")
    original = make_example(example_seed(3, 2), 3.0, style=STYLE_NAMES[2])
    loaded = reader.load(entry)
    assert loaded.caption == original.caption == entry.caption
    assert loaded.attributes == original.attributes
    assert loaded.notes == original.notes
    np.testing.assert_allclose(loaded.audio, original.audio, atol=1.0 / 32768 + 1e-6)
    for name in STEM_NAMES:
        np.testing.assert_allclose(loaded.stems[name], original.stems[name], atol=1.0 / 32768 + 1e-6)
    assert np.abs(sum(loaded.stems[n] for n in STEM_NAMES) - loaded.audio).max() < 3e-4
    for name in ARRAY_NAMES:
        assert np.array_equal(getattr(loaded.annotations, name), getattr(original.annotations, name))


def test_crops_are_aligned_and_reproducible(tiny_corpus: tuple[Path, WriteReport]) -> None:
    root, _ = tiny_corpus
    reader = CorpusReader(root)
    crop = reader.crop("000001", 10, 30)
    full = reader.load("000001")
    assert np.array_equal(crop.audio, full.audio[10 * HOP : 40 * HOP])
    assert np.array_equal(crop.stems, np.stack([full.stems[n] for n in STEM_NAMES])[:, 10 * HOP : 40 * HOP])
    assert np.array_equal(crop.annotations.chroma, full.annotations.chroma[10:40])
    assert crop.annotations.frames == 30
    with pytest.raises(ValueError):
        reader.crop("000001", 60, 30)  # only 75 frames
    first = [(c.example_id, c.start_frame) for c, _ in zip(reader.random_crops(1.0, split=None, seed=9), range(6))]
    again = [(c.example_id, c.start_frame) for c, _ in zip(reader.random_crops(1.0, split=None, seed=9), range(6))]
    assert first == again
    for c, _ in zip(reader.random_crops(2.0, split=None, seed=1, with_stems=False), range(4)):
        assert len(c.audio) == 50 * HOP and c.stems is None and c.annotations.frames == 50
    with pytest.raises(ValueError):
        next(reader.random_crops(10.0, split=None))  # longer than every example


def test_rerun_resumes_and_other_settings_are_refused(tiny_corpus: tuple[Path, WriteReport]) -> None:
    root, _ = tiny_corpus
    report = write_corpus(root, hours=4 * 3.0 / 3600, seed=3, seconds_per_example=3.0, workers=1, progress=False)
    assert report.written == 0 and report.examples == 4
    with pytest.raises(ValueError):
        write_corpus(root, hours=0.001, seed=4, seconds_per_example=3.0, workers=1, progress=False)


def test_two_workers_write_the_same_corpus_as_one(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    write_corpus(one, hours=2 * 1.0 / 3600, seed=5, seconds_per_example=1.0, workers=1, progress=False)
    write_corpus(two, hours=2 * 1.0 / 3600, seed=5, seconds_per_example=1.0, workers=2, progress=False)
    assert (one / "index.jsonl").read_text() == (two / "index.jsonl").read_text()
    assert (one / "000001.flac").read_bytes() == (two / "000001.flac").read_bytes()


def test_cli_make_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c"
    hours = str(2 * 1.0 / 3600)
    code = main(["make", "--hours", hours, "--out", str(out), "--seconds", "1", "--workers", "1", "--quiet"])
    assert code == 0
    code = main(["corpus", "show", str(out)])  # a leading "corpus" is accepted too
    assert code == 0
    text = capsys.readouterr().out
    assert "2 examples" in text and STYLE_NAMES[0] in text and STYLE_NAMES[1] in text
    assert main(["show", str(tmp_path / "missing")]) == 2


# ---------------------------------------------------------------- progress bar


def test_format_helpers() -> None:
    assert format_duration(75) == "01:15" and format_duration(3725) == "1:02:05"
    assert format_duration(float("nan")) == "--:--" and format_duration(-1) == "--:--"
    assert format_postfix("x", loss=0.123456, step=3) == "x loss=0.1235 step=3"


def test_progress_draws_when_enabled_with_its_postfix() -> None:
    stream = io.StringIO()
    bar = progress(total=3, desc="d", unit="ex", stream=stream, enabled=True)
    assert shown(bar)
    advance(bar, 1)
    advance(bar, 2, "0.04 h", loss=0.5)
    bar.close()
    text = stream.getvalue()
    assert "3/3" in text and "0.04 h loss=0.5" in text and text.endswith("\n")


def test_progress_is_silent_when_disabled_or_not_a_tty() -> None:
    stream = io.StringIO()  # not a TTY
    bar = progress(total=5, stream=stream)
    assert not shown(bar)
    advance(bar, 5, loss=0.1)
    bar.close()
    assert stream.getvalue() == ""
    quiet = io.StringIO()
    bar = progress(total=2, stream=quiet, enabled=False)
    advance(bar, 2)
    bar.close()
    assert quiet.getvalue() == ""


def test_hop_size() -> None:
    assert hop_size(16000, 25.0) == 640
    with pytest.raises(ValueError):
        hop_size(16000, 30.0)
