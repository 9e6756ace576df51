"""Sampled instruments for the corpus (lmdm.corpus.sampled): GM programs through FluidSynth.

Needs pyfluidsynth + libfluidsynth3 and a GM soundfont (CI installs the small timgm6mb-soundfont);
skipped without them unless CI is set, then they fail."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, strategies as st

from lmdm.corpus import make_example, write_corpus
from lmdm.corpus.drums import DRUM_KITS
from lmdm.corpus.instruments import PITCHED_VOICES
from lmdm.corpus.sampled import GM_DRUM_KITS, GM_PROGRAMS, SampledInstruments, find_soundfont, midi_velocity, release_end
from lmdm.corpus.score import STEM_NAMES


def _soundfont():
    try:
        import fluidsynth  # noqa: F401

        return find_soundfont("TimGM6mb.sf2")
    except (ImportError, OSError) as e:
        if os.environ.get("CI"):
            pytest.fail(f"sampled-instrument tests need pyfluidsynth and timgm6mb-soundfont in CI: {e}", pytrace=False)
        pytest.skip(f"no FluidSynth or soundfont: {e}")


def test_every_corpus_instrument_has_a_program():
    assert set(GM_PROGRAMS) == set(PITCHED_VOICES)
    assert set(GM_DRUM_KITS) == set(DRUM_KITS)


@given(st.floats(-1.0, 2.0, allow_nan=False))
def test_midi_velocity_stays_in_range(v):
    assert 40 <= midi_velocity(v) <= 127


def test_release_end_cuts_trailing_silence():
    x = np.zeros(32000, np.float32)
    x[:5000] = 0.1
    end = release_end(x, 32000)
    assert 5000 <= end <= 5320 and release_end(np.zeros(1000, np.float32), 32000) == 0


def test_missing_soundfont_is_one_line():
    with pytest.raises(FileNotFoundError, match="no soundfont nope.sf2.*apt-get install fluid-soundfont-gm"):
        find_soundfont("nope.sf2")


def test_a_sampled_note_has_its_pitch():
    font = _soundfont()
    sound = SampledInstruments(font, 32000).sound("piano", 69, 0.5, 0.8)
    assert 0.5 * 32000 < len(sound) < 5 * 32000 and np.abs(sound).max() > 0.01
    spectrum = np.abs(np.fft.rfft(sound[:16000] * np.hanning(16000)))
    peak_hz = np.argmax(spectrum) * 32000 / 16000
    assert abs(peak_hz - 440) < 6 or abs(peak_hz - 880) < 12  # the fundamental (or its octave) dominates


def test_sampled_example_keeps_the_corpus_contract():
    font = _soundfont()
    a = make_example(5, 4.0, style="house", sample_rate=32000, instruments="sampled", soundfont=str(font))
    b = make_example(5, 4.0, style="house", sample_rate=32000, instruments="sampled", soundfont=str(font))
    assert a.attributes.renderer == "sampled:TimGM6mb.sf2" and a.sample_rate == 32000
    np.testing.assert_array_equal(a.audio, b.audio)  # same seed, same audio (a fresh engine per example)
    total = np.zeros_like(a.audio)
    for name in STEM_NAMES:
        total = total + a.stems[name]
    np.testing.assert_array_equal(total, a.audio)  # stems sum to the mix exactly
    assert 0.05 < np.abs(a.audio).max() <= 10 ** (-1 / 20) + 1e-6
    synth = make_example(5, 4.0, style="house", sample_rate=32000)
    assert synth.attributes.renderer == "synth" and not np.array_equal(synth.audio, a.audio)
    assert a.annotations.beat_phase.shape == synth.annotations.beat_phase.shape  # same score, same frames


def test_a_sampled_corpus_does_not_resume_as_synth(tmp_path):
    font = _soundfont()
    write_corpus(tmp_path, 2.0 / 3600, seconds_per_example=2.0, workers=1, progress=False, instruments="sampled", soundfont=str(font))
    with pytest.raises(ValueError, match="other settings"):
        write_corpus(tmp_path, 2.0 / 3600, seconds_per_example=2.0, workers=1, progress=False)
    with pytest.raises(ValueError, match="instruments must be one of"):
        make_example(1, 1.0, instruments="fm")
