"""Conditioning beyond the prompt (issue 6): sketches, jamming, the generative delay.

Sketch sources are pure functions (pitch tracker, onsets, mini-notation, notes); the session
properties run a tiny random model with every additive input (sketch + accomp), so each call
really reaches the model.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lmdm
from lmdm.conditioning.jam import Timeline, heard_mask
from lmdm.conditioning.sketch import SKETCH_DIM
from lmdm.conditioning.sketch_sources import (
    ArrayTrack, as_track, check_values, notes_to_frames, onset_frames, sketch_add, sketch_from_audio, yin,
)
from lmdm.conditioning.delay import DelaySettings, delay_settings, gain_ramp
from lmdm.sampling import sample, schedule
from lmdm.stream import BlockStream

torch.set_num_threads(1)

EXTRAS = [["melody", 13], ["rhythm", 2], ["loudness", 2], ["accomp", 9]]  # tiny latent_dim 8: accomp 1 + 8


@pytest.fixture(scope="module")
def full_model():
    return lmdm.build_model(lmdm.ModelConfig.tiny(extra_add_inputs=EXTRAS), seed=0)


@pytest.fixture(scope="module")
def plain_model():
    return lmdm.build_model(lmdm.ModelConfig.tiny(), seed=0)


def melody_audio(notes, sr=16000, harmonics=(1.0, 0.3)):
    """Sine notes with 10 ms attacks and 20 ms releases (and a second harmonic)."""
    end = max(s + d for s, d, _ in notes)
    t = np.arange(int(end * sr)) / sr
    x = np.zeros_like(t)
    for start, dur, midi in notes:
        f = 440 * 2 ** ((midi - 69) / 12)
        sel = (t >= start) & (t < start + dur)
        tt = t[sel] - start
        env = np.minimum(1, tt / 0.01) * np.minimum(1, (dur - tt) / 0.02)
        x[sel] = sum(0.3 * a * np.sin(2 * np.pi * (k + 1) * f * tt) for k, a in enumerate(harmonics)) * env
    return x.astype(np.float32)


# ---------------------------------------------------------------- sketch sources (pure)

NOTES = [(0.0, 0.4, 60), (0.4, 0.4, 64), (0.8, 0.4, 67), (1.2, 0.4, 72), (1.6, 0.4, 55), (2.0, 0.4, 45), (2.4, 0.4, 81)]


def test_pitch_tracker_hears_the_notes_of_a_sine_melody() -> None:
    sk = sketch_from_audio(melody_audio(NOTES), 16000, 25.0)
    want = notes_to_frames(NOTES, "melody", 25.0)
    assert len(sk["melody"]) == len(want) == 70
    # every frame of every note (10 frames each) is the right MIDI note, octave included
    assert (sk["melody"] == want).mean() >= 0.97
    for start, dur, midi in NOTES:
        inner = slice(round(start * 25) + 1, round((start + dur) * 25) - 1)
        assert (sk["melody"][inner] == midi).all(), (midi, sk["melody"][inner])
    assert sk["loudness"].min() > 0.5 and sk["loudness"].max() <= 1.0


def test_yin_is_unvoiced_on_silence_and_noise_frames_are_not_notes() -> None:
    assert (yin(np.zeros(16000), 16000, 640) == 0).all()
    noise = np.random.default_rng(0).normal(0, 0.1, 16000)
    assert (yin(noise, 16000, 640) > 0).mean() < 0.3


def test_onsets_land_on_the_note_starts() -> None:
    onsets = onset_frames(melody_audio(NOTES), 16000, 25.0)
    found = set(np.nonzero(onsets)[0].tolist())
    starts = {round(s * 25) for s, _, _ in NOTES}
    assert all(any(abs(f - s) <= 1 for f in found) for s in starts)  # recall within one frame (40 ms)
    assert all(any(abs(f - s) <= 1 for s in starts) for f in found)  # no hit away from a note start


def test_mini_notation_to_frames_places_steps_on_the_bar_and_loops() -> None:
    # 120 BPM, 8 frames/s: a bar is 2 s = 16 frames, so each of 4 steps is 4 frames
    track = as_track("melody", "c4 e4 g4 <a4 b4>", bpm=120, frame_rate=8.0)
    two_bars = track.frames(0, 32)
    assert two_bars.tolist() == [60] * 4 + [64] * 4 + [67] * 4 + [69] * 4 + [60] * 4 + [64] * 4 + [67] * 4 + [71] * 4
    # any window of the timeline is the same frames (no playback position to keep)
    assert np.array_equal(track.frames(5, 20), np.concatenate([two_bars, two_bars])[5:25])
    rhythm = as_track("rhythm", "x ~ x x", bpm=120, frame_rate=8.0).frames(0, 16)
    assert np.nonzero(rhythm)[0].tolist() == [0, 8, 12]
    with pytest.raises(ValueError, match="melody sketch"):
        as_track("melody", "c4 x", bpm=120)


def test_arrays_and_notes_become_looping_tracks() -> None:
    assert as_track("loudness", np.array([0.1, 0.5, 1.0])).frames(2, 5).tolist() == pytest.approx([1.0, 0.1, 0.5, 1.0, 0.1])
    notes = [(0.0, 0.1, 60), (0.1, 0.05, 62, 0.5)]
    # 25 frames/s: the first gate touches frames 0-2, the second starts in frame 2 (and takes it over)
    assert notes_to_frames(notes, "melody", 25.0).tolist() == [60, 60, 62, 62]
    assert notes_to_frames(notes, "rhythm", 25.0).tolist() == [1.0, 0, 0.5, 0]
    assert isinstance(as_track("melody", notes), ArrayTrack)
    for kind, bad in [("melody", [200.0]), ("loudness", [1.5]), ("rhythm", [np.nan]), ("rhythm", [])]:
        with pytest.raises(ValueError):
            check_values(kind, np.array(bad))
    with pytest.raises(ValueError):
        notes_to_frames([(0.0, -1.0, 60)], "melody")


def test_sketch_add_marks_the_given_controls_present() -> None:
    tracks = {"melody": (as_track("melody", np.array([60.0, 0.0, 61.0])), 2)}
    add = sketch_add(tracks, block=3, block_frames=4)  # block 3 starts 4 frames into the track
    assert add.shape == (1, SKETCH_DIM, 4)
    melody = add[0, :13]
    assert melody[12].tolist() == [1, 1, 1, 1]  # present
    # track frames 4..7 = [0, 61, 60, 0] (looped): rest, C#, C, rest
    assert melody[:12].sum(0).tolist() == [0, 1, 1, 0] and melody[1, 1] == 1 and melody[0, 2] == 1
    assert add[0, 13:].abs().sum() == 0  # rhythm and loudness absent: all zero, present included


def test_a_pattern_sketch_is_read_at_the_stream_clock_as_the_language_reads_it() -> None:
    """One route from a pattern to frames: the API's mini-notation sketch and the language's
    `sketch` statement both go through lmdm_dsl.clock.pattern_frames at the stream's clock, on its
    bar lines and through its tempo changes; with bpm= the pattern keeps its own tempo from its start."""
    from lmdm.conditioning.sketch import SKETCH_INPUTS
    from lmdm_dsl.clock import pattern_frames
    from lmdm_dsl.mini import parse_pattern

    model = lmdm.build_model(lmdm.ModelConfig.tiny(extra_add_inputs=SKETCH_INPUTS), seed=0)
    cfg, texts = model.config, {"melody": "c4 e4 ~ g4", "rhythm": "x ~ x x ~"}
    sketch = slice(cfg.add_slice("melody").start, cfg.add_slice("loudness").stop)
    s = lmdm.LiveSession(model, steps=1, cfg=1.0, clock_beat=False)
    s.set_sketch(**texts)
    s.next_block()
    s.set_tempo(97)  # bar 1 restarts at block 1
    s.render(2 * s.block_seconds)
    assert s.clock.bpm == 97 and s.clock.origin_block == 1
    for block in range(1, 5):
        language = {k: (ArrayTrack(pattern_frames(parse_pattern(t, k), s.clock, block, s.block_seconds, s.frame_rate)), block)
                    for k, t in texts.items()}
        want = sketch_add(language, block, cfg.block_frames)
        assert torch.equal(s._target_add(block, False, {})[:, sketch], want)
    own = lmdm.LiveSession(model, steps=1, cfg=1.0, clock_beat=False)
    own.set_sketch(rhythm=texts["rhythm"], bpm=133)
    own.next_block()
    own.set_tempo(97)
    own.next_block()
    fixed = as_track("rhythm", texts["rhythm"], bpm=133, frame_rate=s.frame_rate)
    want = sketch_add({"rhythm": (fixed, 0)}, 3, cfg.block_frames)  # its own 133 BPM from block 0, whatever the clock
    assert torch.equal(own._target_add(3, False, {})[:, sketch], want)


# ---------------------------------------------------------------- SDEdit start (sampling, stream)


def test_sdedit_strength_zero_returns_the_input_and_one_ignores_it(full_model) -> None:
    model = full_model
    B, D = model.config.block_frames, model.config.latent_dim
    init = torch.randn(1, D, B, generator=torch.Generator().manual_seed(3))
    cond = model.encode_prompt("bells")
    outs = {}
    for strength in (0.0, 1.0, None):
        s = BlockStream(model, "block_causal", True)
        s.generate(cond, steps=3, generator=torch.Generator().manual_seed(0))  # some history and a pending block
        g = torch.Generator().manual_seed(1)
        kw = {} if strength is None else dict(init=init, strength=strength)
        outs[strength] = (s.generate(cond, steps=3, generator=g, **kw), s)
    assert torch.equal(outs[0.0][0], init)
    assert torch.equal(outs[1.0][0], outs[None][0])
    # after a strength-0 block (no model step) the pending block was still committed: the stream goes on exactly
    nxt = [o[1].generate(cond, steps=2, generator=torch.Generator().manual_seed(2)) for o in (outs[0.0],)]
    ref = BlockStream(model, "block_causal", False)
    ref.generate(cond, steps=3, generator=torch.Generator().manual_seed(0))
    ref.generate(cond, steps=3, generator=torch.Generator().manual_seed(1), init=init, strength=0.0)
    assert (ref.generate(cond, steps=2, generator=torch.Generator().manual_seed(2)) - nxt[0]).abs().max() <= 1e-4


def test_sdedit_schedule_is_the_tail_of_the_full_one() -> None:
    full = schedule(8)
    assert torch.equal(schedule(8, start=1.0), full)
    assert torch.allclose(schedule(8, start=0.5), full[-3:])
    assert schedule(8, start=0.01).tolist() == pytest.approx([0.01, 0.0])
    x = torch.randn(1, 2, 3)
    assert torch.equal(sample(lambda *a: 1 / 0, torch.zeros_like(x), 4, "euler", init=x, start=0.0), x)
    with pytest.raises(ValueError, match="init"):
        sample(lambda *a: x, x, 4, "euler", start=0.5)


@pytest.mark.parametrize("strength", [0.2, 0.6])
def test_low_strength_stays_near_the_input(full_model, strength) -> None:
    """The further from t = 1 the sampler starts, the closer the block stays to the delayed input."""
    model = full_model
    init = torch.randn(1, model.config.latent_dim, model.config.block_frames, generator=torch.Generator().manual_seed(3))
    cond = model.encode_prompt("x")

    def dist(s: float) -> float:
        out = BlockStream(model).generate(cond, steps=8, generator=torch.Generator().manual_seed(0), init=init, strength=s)
        return (out - init).norm().item()

    assert dist(strength / 2) < dist(strength) < dist(1.0)


# ---------------------------------------------------------------- jamming: latency cutoff


def test_heard_mask_is_the_latency_cutoff() -> None:
    # block 5 of 4 frames: frames < 5*4 - 4 = 16 are heard, and only what was encoded
    assert heard_mask(10, 8, block=5, block_frames=4, encoded=100).tolist() == [1] * 6 + [0] * 2
    assert heard_mask(10, 8, block=5, block_frames=4, encoded=13).tolist() == [1] * 3 + [0] * 5
    assert heard_mask(-3, 5, block=1, block_frames=4, encoded=100).tolist() == [0] * 5


def test_timeline_reads_zeros_where_nothing_was_written() -> None:
    t = Timeline(1)
    t.append(np.arange(5.0))
    t.drop_before(2)
    assert t.read(0, 7)[:, 0].tolist() == [0, 0, 2, 3, 4, 0, 0]
    t.write(6, np.array([9.0]))
    assert t.read(4, 4)[:, 0].tolist() == [4, 0, 9, 0]


def test_block_n_uses_only_input_heard_a_block_before_it(full_model) -> None:
    """Two players who differ only from frame k on: blocks whose cutoff n B - B <= k are identical."""
    model = full_model
    B, hop = model.config.block_frames, model.config.hop
    rng = np.random.default_rng(0)
    k = 3 * B + 2  # the players part here (in frames)
    a = rng.normal(0, 0.2, (10 * B * hop, 1)).astype(np.float32)
    b = a.copy()
    b[k * hop :] = rng.normal(0, 0.2, b[k * hop :].shape)
    outs = []
    for player in (a, b):
        s = lmdm.LiveSession(model, prompt="band", steps=2, seed=1, jam_follow="listen")
        s.feed_input(player)  # all of it at once: the cutoff, not the feeding, decides
        outs.append([s.next_latents() for _ in range(7)])
        assert s.stats.jamming
    for n in range(7):
        same = torch.equal(outs[0][n], outs[1][n])
        assert same == (n * B - B <= k), n


def test_the_player_is_heard_at_all(full_model) -> None:
    model = full_model
    s1 = lmdm.LiveSession(model, prompt="band", steps=2, seed=1, jam_follow="listen")
    s2 = lmdm.LiveSession(model, prompt="band", steps=2, seed=1)
    s1.feed_input(np.random.default_rng(0).normal(0, 0.3, 20 * model.block_samples).astype(np.float32))
    a = [s1.next_latents() for _ in range(4)]
    b = [s2.next_latents() for _ in range(4)]
    assert torch.equal(a[1], b[1]) and not torch.equal(a[3], b[3])  # block 2 hears frames < B; block 3 more
    s1.set_jam(False)
    s1.next_latents()
    assert not s1.stats.jamming


def click_track(bpm: float, seconds: float, sample_rate: int = 16000, first_s: float = 0.1) -> np.ndarray:
    """Short noise bursts on every beat."""
    out = np.zeros(round(seconds * sample_rate), dtype=np.float32)
    burst = np.random.default_rng(0).normal(0, 0.5, 160).astype(np.float32) * np.hanning(160).astype(np.float32)
    t = first_s
    while (i := round(t * sample_rate)) + 160 < len(out):
        out[i : i + 160] = burst
        t += 60.0 / bpm
    return out


def test_beat_following_carries_the_players_onsets_forward_by_whole_beats() -> None:
    from lmdm.conditioning.beat import predicted_onsets, project_onsets

    # pure projection: onsets at 1.0 s and 1.25 s, beats of 0.5 s, frames 40..64 (1.6 s .. 2.6 s) at 25/s
    got = project_onsets(np.array([1.0, 1.25]), 0.5, 1.6, 25, 25.0)
    assert np.nonzero(got)[0].tolist() == [int(t * 25 + 1e-9) - 40 for t in (1.75, 2.0, 2.25, 2.5)]
    assert not project_onsets(np.array([1.0]), 0.0, 1.6, 25, 25.0).any()
    # a 120 BPM click: the block 2 s after what was heard gets its clicks, to within a frame
    clicks = click_track(120.0, 12.0)
    heard_until, start = 8 * 16000, 9 * 25  # heard 0..8 s; predict frames of 9..10 s
    sketch = predicted_onsets(clicks[:heard_until], 16000, start, 25, 25.0)
    true = project_onsets(np.array([0.1]), 0.5, 9.0, 25, 25.0)  # where the clicks really fall
    assert sketch.sum() == true.sum() == 2
    assert all(np.abs(np.nonzero(sketch)[0] - f).min() <= 1 for f in np.nonzero(true)[0])
    # heard_start: the same input heard from 3 s on, placed on the same timeline, predicts the same
    assert np.array_equal(predicted_onsets(clicks[3 * 16000 : heard_until], 16000, start, 25, 25.0, heard_start=3 * 16000), sketch)
    assert predicted_onsets(clicks[: 16000], 16000, start, 25, 25.0) is None  # 1 s heard: too little
    assert predicted_onsets(np.zeros(heard_until), 16000, start, 25, 25.0) is None  # silence: no beat
    # the player rests on its last beat: the latest beat with onsets is carried forward instead
    rested = clicks[:heard_until].copy()
    rested[round(7.55 * 16000) :] = 0.0  # the 7.6 s click is gone
    assert np.array_equal(predicted_onsets(rested, 16000, start, 25, 25.0), sketch)


def bass_line(bpm: float, seconds: float, notes=(45, 45, 48, 52), sample_rate: int = 16000, first_s: float = 0.1) -> np.ndarray:
    """A plucked bass: one decaying harmonic tone per beat, the MIDI `notes` in turn."""
    out = np.zeros(round(seconds * sample_rate), dtype=np.float32)
    n = round(0.4 * sample_rate)
    t = np.arange(n) / sample_rate
    k, beat = 0, first_s
    while (i := round(beat * sample_rate)) + n < len(out):
        f0 = 440.0 * 2 ** ((notes[k % len(notes)] - 69) / 12)
        tone = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in (1, 2, 3, 4))
        out[i : i + n] += (0.3 * tone * np.exp(-6 * t) * np.hanning(2 * n)[n:]).astype(np.float32)  # no click at the end
        k, beat = k + 1, beat + 60.0 / bpm
    return out


def test_key_following_plays_the_players_notes_one_per_beat() -> None:
    from lmdm.conditioning.beat import PlayerBeat, player_beat
    from lmdm.conditioning.key import key_melody, player_notes, predicted_melody

    # the notes: A (half the beats), then C and E; drums (noise hits) and silence have none
    bass = bass_line(120.0, 12.0)
    notes = player_notes(bass[: 8 * 16000], 16000).tolist()
    assert notes[0] == 9 and sorted(notes) == [0, 4, 9]  # (E also gets A's third harmonic)
    hits = np.zeros(8 * 16000, dtype=np.float32)  # drums: a fresh noise hit on every beat
    rng = np.random.default_rng(1)
    for i in range(1600, len(hits) - 800, 8000):
        hits[i : i + 800] = rng.normal(0, 0.5, 800) * np.hanning(800)
    assert player_notes(hits, 16000).size == 0
    assert player_notes(np.zeros(8 * 16000), 16000).size == 0
    # one note per beat in PATTERN order (first, second, first, third), beats counted from the
    # strongest onset of the latest beat: beat 0.5 s from 1.0 s, frames of 2.0 .. 2.96 s are beats 2 and 3
    got = key_melody(np.array([9, 0, 4]), PlayerBeat(0.5, np.array([0.75, 1.0]), np.array([0.2, 1.0])), 2.0, 25, 25.0)
    assert got.tolist() == [60 + 9] * 13 + [60 + 4] * 12
    assert key_melody(np.array([2]), PlayerBeat(0.5, np.zeros(0), np.zeros(0)), 0.0, 50, 25.0).tolist() == [62] * 50  # one note, a rest
    assert not key_melody(np.zeros(0, dtype=int), PlayerBeat(0.5, np.array([1.0]), np.array([1.0])), 2.0, 25, 25.0).any()
    # from the audio: the notes change on the player's beats (to within a frame), on its grid
    melody = predicted_melody(bass[: 8 * 16000], 16000, 9 * 25, 25, 25.0)
    beat = player_beat(bass[: 8 * 16000], 16000)
    assert beat is not None and abs(beat.period_s - 0.5) < 0.01
    assert set(melody.tolist()) <= {69.0, 60.0, 64.0} and len(set(melody.tolist())) == 2
    change = int(np.nonzero(np.diff(melody))[0][0]) + 1  # the frame the note changes on
    assert abs((9 * 25 + change) / 25.0 - (0.1 + 0.5 * round((9.0 + change / 25.0 - 0.1) / 0.5))) <= 1 / 25.0 + 1e-6
    assert predicted_melody(bass[:16000], 16000, 9 * 25, 25, 25.0) is None  # 1 s heard: too little
    assert player_beat(hits, 16000) is not None and predicted_melody(hits, 16000, 9 * 25, 25, 25.0) is None  # a beat, no notes


def test_a_session_following_the_key_gives_the_players_notes_as_its_melody_sketch(full_model, monkeypatch) -> None:
    from lmdm.conditioning.beat import predicted_onsets
    from lmdm.conditioning.key import predicted_melody
    from lmdm.conditioning.sketch import melody_feature

    model = full_model
    B, S, fr = model.config.block_frames, model.block_samples, model.config.frame_rate
    bass = bass_line(120.0, 4.0 + 20 * model.config.block_seconds)
    s = lmdm.LiveSession(model, prompt="band", steps=2, seed=1)
    assert s.stats.jam_follow == "key"  # the default for models with sketch inputs
    s.set_sketch(melody="c4 e4")
    seen = []
    real_generate = s.stream.generate
    monkeypatch.setattr(s.stream, "generate", lambda *a, **kw: seen.append(kw.get("target_add")) or real_generate(*a, **kw))
    s.feed_input(bass)
    n_heard = math.ceil(2.0 / model.config.block_seconds) + 1
    for _ in range(n_heard + 2):
        s.next_latents()
    rhythm, melody = model.config.add_slice("rhythm"), model.config.add_slice("melody")
    followed = 0
    for n, target in enumerate(seen):
        heard = bass[: (n - 1) * S] if n >= 1 else bass[:0]
        notes = predicted_melody(heard, model.sample_rate, n * B, B, fr) if n >= 1 else None
        if notes is not None:  # the player's notes replace the melody sketch in force
            followed += 1
            assert torch.equal(target[0, melody.start : melody.stop - 1], melody_feature(torch.from_numpy(notes)[None])[0])
            assert torch.equal(target[0, rhythm.start], torch.from_numpy(predicted_onsets(heard, model.sample_rate, n * B, B, fr)))
        else:
            assert (target[0, melody.start] + target[0, melody.start + 4]).eq(1).all()  # "c4 e4" in force
        assert target[0, melody.stop - 1].eq(1).all()
    assert followed >= 2 and s.stats.jamming
    # "beat": the rhythm only; the melody sketch in force stays
    s.set_jam(True, follow="beat")
    seen.clear()
    s.next_latents()
    assert s.stats.jam_follow == "beat" and s.stats.jamming
    assert (seen[0][0, melody.start] + seen[0][0, melody.start + 4]).eq(1).all() and seen[0][0, rhythm.stop - 1].eq(1).all()


def test_a_session_follows_the_players_beat_as_its_rhythm_sketch(full_model, plain_model, monkeypatch) -> None:
    from lmdm.conditioning.beat import predicted_onsets

    model = full_model
    B, S, fr = model.config.block_frames, model.block_samples, model.config.frame_rate
    clicks = click_track(120.0, 4.0 + 20 * model.config.block_seconds)
    s = lmdm.LiveSession(model, prompt="band", steps=2, seed=1)
    s.set_jam(True, follow="beat")
    s.set_sketch(melody="c4 e4")
    seen = []
    real_generate = s.stream.generate
    monkeypatch.setattr(s.stream, "generate", lambda *a, **kw: seen.append(kw.get("target_add")) or real_generate(*a, **kw))
    s.feed_input(clicks)
    n_heard = math.ceil(2.0 / model.config.block_seconds) + 1  # the first block with MIN_HEARD_S heard before its cutoff
    for _ in range(n_heard + 2):
        s.next_latents()
    assert s.stats.jamming
    rhythm, melody = model.config.add_slice("rhythm"), model.config.add_slice("melody")
    for n, target in enumerate(seen):
        assert target[0, melody.stop - 1].eq(1).all()  # the melody sketch stays in force
        expected = predicted_onsets(clicks[: (n - 1) * S], model.sample_rate, n * B, B, fr) if n >= 1 else None
        if expected is not None:
            assert torch.equal(target[0, rhythm.start], torch.from_numpy(expected)) and target[0, rhythm.stop - 1].eq(1).all()
        else:  # nothing to follow yet: no rhythm sketch at all
            assert target[0, rhythm].eq(0).all()
    assert any(t[0, rhythm.start].any() for t in seen)
    # the cutoff: input after it changes nothing
    late = clicks.copy()
    late[(n_heard + 1 - 1) * S :] = 0.0
    outs = []
    for player in (clicks, late):
        t = lmdm.LiveSession(model, prompt="band", steps=2, seed=1)
        t.feed_input(player)
        outs.append([t.next_latents() for _ in range(n_heard + 2)])
    assert all(torch.equal(a, b) for a, b in zip(outs[0][: n_heard + 1], outs[1][: n_heard + 1]))
    # modes and errors
    with pytest.raises(ValueError, match='"key", "beat" or "listen"'):
        s.set_jam(True, follow="telepathy")
    with pytest.raises(ValueError, match="sketch is not available"):
        lmdm.LiveSession(plain_model).set_jam(True, follow="beat")
    s.set_jam(True, follow="listen")
    s.next_latents()
    assert s.stats.jam_follow == "listen" and s.stats.jamming
    s.set_jam(False)
    s.next_latents()
    assert not s.stats.jamming and s.stats.jam_follow == "listen"


def test_a_live_engines_captured_input_makes_the_session_follow_the_beat(full_model) -> None:
    """`lmdm live --input device`: what the duplex stream captured since the last block is fed, then
    the block is made; with a beat in the input the session follows it."""
    from lmdm.live import with_device_input

    model = full_model
    S = model.block_samples
    clicks = click_track(120.0, 4.0 + 20 * model.config.block_seconds)

    class CapturingEngine:  # the part of AudioEngine with_device_input uses: one block of capture per call
        position = 0

        def read_input(self) -> np.ndarray:
            chunk = clicks[self.position : self.position + S, None]
            self.position += S
            return chunk

    session = lmdm.LiveSession(model, prompt="band", steps=2, seed=1)
    produce = with_device_input(session, CapturingEngine())
    blocks = [produce() for _ in range(math.ceil(2.0 / model.config.block_seconds) + 3)]
    assert all(b.shape == (S, 1) and np.isfinite(b).all() for b in blocks)
    assert session.stats.jamming and session.stats.jam_follow == "key"
    assert session.stats.input_seconds == pytest.approx(len(blocks) * model.config.block_seconds)


# ---------------------------------------------------------------- session API


def test_supports_reads_the_model(full_model, plain_model) -> None:
    full, plain = lmdm.LiveSession(full_model), lmdm.LiveSession(plain_model)
    assert [full.supports(f) for f in ("sketch", "jam", "delay", "telepathy")] == [True, True, True, False]
    assert [plain.supports(f) for f in ("sketch", "jam", "delay")] == [False, False, True]
    with pytest.raises(ValueError, match="sketch is not available"):
        plain.set_sketch(melody="c4")
    with pytest.raises(ValueError, match="jam is not available"):
        plain.set_jam(True)


def test_set_sketch_forms_and_validation(full_model) -> None:
    s = lmdm.LiveSession(full_model, steps=1)
    s.set_sketch(melody="c4 e4", rhythm=[(0.0, 0.1, 60)], bpm=100)
    s.set_sketch("loudness", np.full(8, 0.5))
    s.next_block()
    assert s.stats.sketches == ("melody", "rhythm", "loudness")
    s.set_sketch("rhythm", None)
    s.set_sketch({"melody": None})
    s.next_block()
    assert s.stats.sketches == ("loudness",)
    s.set_sketch(None)
    s.next_block()
    assert s.stats.sketches == ()
    for bad in (dict(melody="c4 x"), dict(loudness=[2.0]), dict(tempo="x")):
        with pytest.raises((ValueError, TypeError)):
            s.set_sketch(**bad)
    with pytest.raises(ValueError):
        s.set_sketch()
    with pytest.raises(ValueError):
        s.set_sketch("melody", "c4", melody="e4")


def test_a_sketch_changes_the_block_and_only_from_the_next_block(full_model) -> None:
    a = lmdm.LiveSession(full_model, steps=2, seed=3)
    b = lmdm.LiveSession(full_model, steps=2, seed=3)
    first = [a.next_latents(), b.next_latents()]
    assert torch.equal(*first)
    a.set_sketch(melody="c4 e4 g4 c5")
    assert not torch.equal(a.next_latents(), b.next_latents())


def test_set_delay_forms_and_validation(full_model) -> None:
    s = lmdm.LiveSession(full_model, steps=1)
    s.set_delay(2, strength=[0.2, 0.8], prompts=["glass", "strings"])
    s.next_block()
    assert s.delay_settings == DelaySettings(2.0, (0.2, 0.8), 0.3, 0.5, ("glass", "strings"))
    s.set_delay(beats=3, bpm=120, mix=0.2)  # 1.5 s at 0.32 s blocks
    s.next_block()
    assert s.delay_settings.time_blocks == pytest.approx(1.5 / s.block_seconds)
    s.set_delay(None)
    s.next_block()
    assert s.delay_settings is None and s.stats.delay == ""
    for bad in (dict(blocks=0), dict(blocks=1000), dict(blocks=1, strength=1.5), dict(blocks=1, mix=-0.1),
                dict(blocks=1, prompts=[""]), dict(beats=2, bpm=1000), {}):
        with pytest.raises(ValueError):
            s.set_delay(**bad)


def test_delay_settings_take_turns_per_repeat() -> None:
    d = delay_settings(1.5, strength=[0.1, 0.9], prompts=("a", "b", "c"))
    repeats = [d.repeat(b, first_block=10) for b in range(10, 17)]
    assert repeats == [0, 0, 1, 2, 2, 3, 4]
    assert [d.prompt_at(r) for r in repeats[:4]] == ["a", "a", "b", "c"]
    assert [d.strength_at(r) for r in repeats[:4]] == [0.1, 0.1, 0.9, 0.1]
    assert gain_ramp(1.0, 0.5, 6, 4)[:, 0].tolist() == pytest.approx([0.875, 0.75, 0.625, 0.5, 0.5, 0.5])


def test_delay_strength_zero_replays_the_line_through_the_codec(full_model) -> None:
    """strength 0, feedback 0, mix 1: the wet output is the input D blocks late, through encode/decode."""
    model = full_model
    S = model.block_samples
    s = lmdm.LiveSession(model, steps=2)
    player = melody_audio([(0.0, 6 * S / 16000, 69)], harmonics=(1.0,))
    s.feed_input(player)
    s.set_delay(2, strength=0.0, feedback=0.0, mix=1.0)
    out = s.render(6 * S / model.sample_rate)[:, 0]
    line = np.zeros_like(out)
    line[2 * S :] = player[: 4 * S]
    codec = model.codec
    expect = codec.decode(codec.encode(torch.from_numpy(line)[None, None]))[0, 0].numpy()
    assert np.abs(out - expect).max() < 1e-4


def test_mix_input_adds_the_player_back(full_model) -> None:
    model = full_model
    player = (0.1 * np.sin(np.arange(3 * model.block_samples) * 0.01)).astype(np.float32)
    outs = []
    for mix in (False, True):
        s = lmdm.LiveSession(model, steps=2, seed=5, mix_input=mix, jam=False)
        s.feed_input(player)
        outs.append(s.render(3 * model.block_samples / model.sample_rate)[:, 0])
    fade = round(0.02 * model.sample_rate)
    ramp = np.ones(len(player))
    ramp[:fade] = np.arange(1, fade + 1) / fade  # the player fades in over 20 ms at the first block
    assert np.abs(outs[1] - outs[0] - player * ramp).max() < 1e-5


def test_feed_input_validates_and_resamples(full_model) -> None:
    s = lmdm.LiveSession(full_model, steps=1)
    with pytest.raises(ValueError):
        s.feed_input(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError):
        s.feed_input(np.zeros(10), sample_rate=0)
    s.feed_input(np.zeros((44100, 2), dtype=np.float32), sample_rate=44100)  # stereo at 44.1 kHz
    s.feed_input(np.full(100, np.nan))  # NaN never reaches the model
    s.next_block()
    assert s.stats.input_seconds == pytest.approx(1.0 + 100 / 16000, abs=2e-3)


# ---------------------------------------------------------------- properties: any interleaving


def op_strategy():
    prompt = st.one_of(st.sampled_from(["dub", "acid bass", "pads"]),
                       st.just([("dub", 0.7), ("pads", 0.3)])).map(lambda p: ("set_prompt", p, 0))
    glide = st.sampled_from(["choir", "bells"]).map(lambda p: ("set_prompt", p, 2))
    sketch = st.one_of(
        st.just(("set_sketch", dict(melody="c4 e4 <g4 a4> ~"))),
        st.just(("set_sketch", dict(rhythm="x ~ x x", loudness=[0.2, 0.9]))),
        st.just(("set_sketch", dict(melody=[(0.0, 0.2, 62), (0.2, 0.3, 65)]))),
        st.just(("set_sketch", None)),
    )
    feed = st.tuples(st.integers(1, 9000), st.integers(0, 3)).map(lambda a: ("feed_input", *a))
    delay = st.one_of(
        st.tuples(st.sampled_from([0.5, 1.0, 2.5]), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1),
                  st.sampled_from([(), ("glass",), ("a", "b")])).map(lambda a: ("set_delay", *a)),
        st.just(("set_delay", None)),
    )
    jam = st.tuples(st.booleans(), st.sampled_from([None, "key", "beat", "listen"])).map(lambda a: ("set_jam", *a))
    return st.one_of(prompt, glide, sketch, feed, delay, jam, st.just(("reset",)), st.just(("block",)), st.just(("block",)))


def play(model, ops, regime, seed=0):
    s = lmdm.LiveSession(model, prompt="start", steps=2, regime=regime, seed=seed)
    rng = np.random.default_rng(seed)
    fed = 0
    audio, resets = [s.next_block()], []
    for op in ops:
        kind = op[0]
        if kind == "set_prompt":
            s.set_prompt(op[1], over_blocks=op[2])
        elif kind == "set_sketch":
            s.set_sketch(None) if op[1] is None else s.set_sketch(**op[1])
        elif kind == "feed_input":
            n, wave = op[1], op[2]
            t = np.arange(fed, fed + n) / model.sample_rate
            x = [np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 97 * t) * np.sin(2 * np.pi * 3 * t),
                 np.sign(np.sin(2 * np.pi * 2 * t)) * 0.05 * rng.normal(size=n), np.zeros(n)][wave]
            s.feed_input((0.3 * x).astype(np.float32))
            fed += n
        elif kind == "set_delay":
            s.set_delay(None) if op[1] is None else s.set_delay(op[1], strength=op[2], feedback=op[3], mix=op[4], prompts=op[5])
        elif kind == "set_jam":
            s.set_jam(op[1], follow=op[2])
        elif kind == "reset":
            s.reset()
            resets.append(len(audio))
        audio.append(s.next_block())
        assert s.stats.cache_resets == len(resets)
    return np.concatenate(audio), s


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op_strategy(), min_size=2, max_size=9), regime=st.sampled_from(["block_causal", "encdec"]))
def test_any_interleaving_keeps_one_smooth_replayable_stream(full_model, ops, regime) -> None:
    audio, s = play(full_model, ops, regime)
    n = s.block_samples
    assert audio.shape == ((len(ops) + 1) * n, full_model.channels)
    assert np.isfinite(audio).all()
    # boundaries: the decoder glides every latent frame into the next (within a block and across
    # one alike) and output gains ramp over 20 ms, so a block boundary is an ordinary sample step;
    # it may not exceed the largest step the model makes inside blocks (times 1.0; + 1e-6 for float32)
    d = np.abs(np.diff(audio[:, 0]))
    boundary = d[n - 1 :: n]
    inside = np.delete(d, np.arange(n - 1, len(d), n))
    assert boundary.max() <= inside.max() + 1e-6
    again, _ = play(full_model, ops, regime)
    assert np.array_equal(audio, again)


def test_a_stream_with_everything_on_is_the_same_cached_and_uncached(full_model) -> None:
    for regime in ("block_causal", "encdec"):
        outs = []
        for use_cache in (True, False):
            s = lmdm.LiveSession(full_model, prompt="x", steps=2, regime=regime, use_cache=use_cache)
            s.feed_input(np.sin(np.arange(30000) * 0.05).astype(np.float32))
            s.set_sketch(melody="c4 e4")
            lat = [s.next_latents() for _ in range(3)]
            s.set_delay(1.0, strength=0.5)
            lat += [s.next_latents() for _ in range(2)]
            s.set_delay(None)
            lat += [s.next_latents() for _ in range(4)]
            outs.append(torch.cat(lat, 2))
        assert (outs[0] - outs[1]).abs().max() <= 1e-4, regime


# ---------------------------------------------------------------- the language and OSC on a real session


def test_the_language_and_osc_drive_sketches_delay_and_jam(full_model, plain_model) -> None:
    from lmdm.osc import OscServer
    from lmdm_dsl import Interpreter

    s = lmdm.LiveSession(full_model, prompt="intro", steps=1)
    lang = Interpreter(s)
    assert lang.run('sketch melody "c4 e4 <g4 a4> ~"; sketch loudness ramp 0.2 1 over 2 bars') == [
        'sketch melody "c4 e4 <g4 a4> ~" (repeats every 2 bars)', "sketch loudness ramp 0.2 1 over 2 bars (from block 0)"]
    s.next_block()
    assert s.stats.sketches == ("melody", "loudness")
    replies = OscServer(lang).handle_message("/lmdm/delay", [2.0, 0.4])
    assert replies == [("/lmdm/reply", "delay 2 blocks strength 0.4 feedback 0.3 mix 0.5 (2 blocks)")]
    assert OscServer(lang).handle_message("/lmdm/jam", [0]) == [("/lmdm/reply", "jam off (the input is not given to the model)")]
    s.feed_input(np.zeros(4000, dtype=np.float32))
    s.next_block()
    assert s.stats.delay.startswith("2 blocks strength 0.4") and s.stats.input_seconds == 0.25
    lang.run("delay off; sketch off; jam on")
    s.next_block()
    assert s.stats.delay == "" and s.stats.sketches == () and s.stats.cache_resets == 0
    plain = Interpreter(lmdm.LiveSession(plain_model, steps=1))
    assert plain.run('sketch melody "c4"') == ["error: sketch is not available in this model"]
    assert plain.run("jam on") == ["error: jam is not available in this model"]
    lang.close()
    plain.close()


# ---------------------------------------------------------------- the measurement script


def test_measure_scores() -> None:
    from lmdm.eval.sketch import beat_phase_agreement, onset_f1, pitch_class_hits, same_key
    from lmdm.analysis import Key

    assert onset_f1([10, 20, 31], [10, 21, 30, 40]) == pytest.approx(2 * 1.0 * 0.75 / 1.75)
    assert onset_f1([5], [9]) == 0.0
    assert beat_phase_agreement([0, 1], np.array([0.0, 0.5])) == pytest.approx(1.0)  # on the beat and the off-beat
    assert beat_phase_agreement([0], np.array([0.25])) == pytest.approx(-1.0)
    assert pitch_class_hits(np.array([0, 4, -1, 7]), np.array([60, 64, 67, 0])) == pytest.approx(2 / 3)
    assert same_key(Key("C", "major", 1), Key("A", "minor", 1)) and not same_key(Key("C", "major", 1), Key("G", "major", 1))


def test_main_pitch_class_follows_a_melody() -> None:
    from lmdm.eval.sketch import main_pitch_class, pitch_class_hits

    pcs = main_pitch_class(melody_audio(NOTES), 16000, 25.0)
    # all but the A2 (110 Hz, and 220 Hz: below the 250 Hz band, so only noise is left there)
    assert pitch_class_hits(pcs, notes_to_frames(NOTES, "melody", 25.0)) >= 6 / 7 - 0.03


def test_the_measurement_script_runs_end_to_end(full_model, tmp_path) -> None:
    from lmdm.eval.sketch import format_result, measure
    from lmdm.corpus import write_corpus

    write_corpus(tmp_path, hours=3 * 6.0 / 3600, seed=0, seconds_per_example=6.0, workers=1, progress=False)
    r = measure(full_model, str(tmp_path), examples=1, blocks=3, steps=1, strengths=(0.0, 1.0), player_stem="drums", log=lambda line: None)
    assert r["jam"]["player_stem"] == "drums" and "jam (player: drums)" in format_result(r)
    assert set(r["sketch"]) >= {"sketch", "no_sketch", "corpus_ceiling", "codec_ceiling"}
    assert set(r["jam"]) >= {"jam_key", "jam_beat", "jam_listen", "unconditioned", "codec_ceiling", "real_accompaniment"} and set(r["delay"]["curve"]) == {"0", "1"}
    only_jam = measure(full_model, str(tmp_path), examples=1, blocks=3, steps=1, only=("jam",), log=lambda line: None)
    assert "jam" in only_jam and "sketch" not in only_jam and "delay" not in only_jam and "jam (player: bass)" in format_result(only_jam)
    for row in list(r["delay"]["curve"].values()) + [{"p_prompt_style": r["delay"]["dry_p_prompt_style"]}]:
        assert 0.0 <= row["p_prompt_style"] <= 1.0
    assert "pitch-class acc" in format_result(r) and "p(prompt style)" in format_result(r)


def test_lmdm_eval_conditioning_runs_the_measurement_with_the_models_own_steps(tmp_path, capsys) -> None:
    import json

    from lmdm.cli import main
    from lmdm.corpus import write_corpus

    write_corpus(tmp_path, hours=2 * 6.0 / 3600, seed=0, seconds_per_example=6.0, workers=1, progress=False)
    args = ["eval", "conditioning", "--model", "tiny", "--corpus", str(tmp_path), "--examples", "2", "--blocks", "2", "--only", "delay", "--json"]
    assert main(args) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["steps"] == 8 and set(r) >= {"delay"} and "sketch" not in r  # tiny's own sampler steps; only what was asked
    assert set(r["delay"]["curve"]) == {"0", "0.25", "0.5", "0.75", "1"}
    with pytest.raises(SystemExit):
        main(["eval", "conditioning", "--only", "sketches"])  # argparse's one-line error names the choices
    assert "invalid choice: 'sketches'" in capsys.readouterr().err


def test_the_delay_timbre_prompt_is_another_style_and_the_probe_scores_it(tmp_path) -> None:
    from lmdm.eval.sketch import style_probability, timbre_prompts
    from lmdm.corpus import write_corpus
    from lmdm.corpus.reader import CorpusReader
    from lmdm.eval.probe import load_probe

    write_corpus(tmp_path, hours=8 * 4.0 / 3600, seed=1, seconds_per_example=4.0, workers=1, progress=False)
    reader = CorpusReader(tmp_path)
    crops = [reader.crop(e, 0, 50) for e in reader.select(None)[:4]]
    for crop, (caption, style) in zip(crops, timbre_prompts(reader, crops, seed=0)):
        assert caption and style in {e.attributes.style for e in reader.select(None)}
        if len({e.attributes.style for e in reader.select(None)}) > 1:
            assert style != crop.attributes.style
    probe = load_probe()
    p = style_probability(probe, crops[0].audio, crops[0].attributes.style)
    assert 0.0 <= p <= 1.0
    assert style_probability(probe, crops[0].audio, "no such style") != style_probability(probe, crops[0].audio, "no such style")  # nan


def test_the_delay_command_writes_the_input_and_its_repeats(tmp_path) -> None:
    import soundfile as sf

    from lmdm.cli import main as lmdm_main

    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, melody_audio([(0.0, 0.3, 64), (0.3, 0.3, 67)], sr=22050), 22050)
    code = lmdm_main(["delay", str(src), "-o", str(out), "--prompt", "glass bells", "--prompt", "strings", "--strength", "0.6",
                      "--blocks", "2", "--model", "tiny", "--quiet"])
    audio, rate = sf.read(out, dtype="float32", always_2d=True)
    assert code == 0 and rate == 16000
    assert len(audio) == round(0.6 * 16000 + 2 * 2 * 0.32 * 16000)  # the input + two delay times of tail
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0


def test_a_delay_without_any_input_leaves_the_stream_playing_unchanged() -> None:
    """A set that turns the delay on with no player must not silence the music (a line of silence)."""
    model = lmdm.build_model(lmdm.ModelConfig.tiny(), seed=0)
    plain = lmdm.LiveSession(model, prompt="techno", steps=2, seed=3)
    delayed = lmdm.LiveSession(model, prompt="techno", steps=2, seed=3)
    delayed.set_delay(1, strength=0.6, feedback=0.3, mix=0.5)
    a, b = plain.render(2.0), delayed.render(2.0)
    assert np.array_equal(a, b) and np.abs(b).max() > 0
    assert delayed.stats.delay.endswith("(waiting for input)")
    delayed.feed_input(np.zeros(model.sample_rate, np.float32))  # a player arrives: the delay takes over
    delayed.render(1.0)
    assert not delayed.stats.delay.endswith("(waiting for input)")


@pytest.mark.parametrize("notes", [[(1e12, 1, 60)], [(0, 1e7, 60)]])
def test_a_note_list_too_long_is_refused_before_anything_is_allocated(notes) -> None:
    from lmdm.conditioning.sketch_sources import MAX_TRACK_FRAMES, notes_to_frames

    with pytest.raises(ValueError, match=f"at most .* s \\({MAX_TRACK_FRAMES} frames\\)"):
        notes_to_frames(notes, "melody")
