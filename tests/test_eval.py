"""lmdm.eval: Fréchet distance, model-free measures, prompt parsing, the probe, evaluate() and `lmdm eval`.

A toy corpus (16 six-second examples of two styles) is written once per module and a tiny probe
is trained on it for a few dozen steps (a few seconds).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmdm.corpus import CorpusReader, make_example, write_corpus
from lmdm.eval import (
    Gaussian,
    audio_checks,
    evaluate,
    fd_probe,
    fit_gaussian,
    frechet_distance,
    key_of,
    load_probe,
    parse_prompt,
    tempo_bpm,
)
from lmdm.eval.cli import main as eval_main
from lmdm.eval.frechet import drift, psd_sqrt
from lmdm.eval.plot import report_png
from lmdm.eval.probe import DEFAULT_PROBE, ProbeConfig
from lmdm.eval.report import shuffled, tempo_hit
from lmdm.eval.inputs import Item
from lmdm.eval.train_probe import train

SR = 16000
TOY_STYLES = ("techno", "ambient")


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(corpus dir, probe dir): 16 x 6 s of techno and ambient, and a tiny probe trained on it."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("toy_corpus")
    write_corpus(root, hours=16 * 6.0 / 3600, seed=1, seconds_per_example=6.0, workers=1, progress=False, styles=TOY_STYLES)
    probe_dir = root / "probe"
    train(root, probe_dir, config=ProbeConfig.tiny(), steps=80, batch=16, seed=0, log=lambda s: None)
    return root, probe_dir


def fresh_examples(count: int, seconds: float = 6.0) -> list:
    """Examples the toy probe never saw (other seeds), alternating the two styles."""
    return [make_example(1000 + i, seconds, style=TOY_STYLES[i % 2]) for i in range(count)]


# ----------------------------------------------------------------------------------------------
# Fréchet distance


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), dim=st.integers(2, 12), shift=st.floats(0.1, 5.0))
def test_fd_is_zero_on_itself_and_grows_with_a_shift(seed: int, dim: int, shift: float) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((200, dim)) @ rng.standard_normal((dim, dim))  # correlated embeddings
    g = fit_gaussian(x)
    scale = np.trace(g.cov)
    assert frechet_distance(g, g) == pytest.approx(0.0, abs=1e-6 * scale)
    direction = rng.standard_normal(dim)
    direction /= np.linalg.norm(direction)
    distances = [frechet_distance(g, fit_gaussian(x + k * shift * direction)) for k in (1, 2, 3)]
    # same covariance: FD is exactly the squared mean shift
    assert distances == pytest.approx([(k * shift) ** 2 for k in (1, 2, 3)], rel=1e-6, abs=1e-6 * scale)


@settings(max_examples=25, deadline=None)
@given(a=st.lists(st.floats(0.0, 10.0), min_size=3, max_size=3), b=st.lists(st.floats(0.0, 10.0), min_size=3, max_size=3))
def test_fd_of_diagonal_gaussians_has_the_closed_form(a: list[float], b: list[float]) -> None:
    ga, gb = Gaussian(np.zeros(3), np.diag(a), 1), Gaussian(np.ones(3), np.diag(b), 1)
    expected = 3.0 + sum((np.sqrt(x) - np.sqrt(y)) ** 2 for x, y in zip(a, b))
    assert frechet_distance(ga, gb) == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert frechet_distance(ga, gb) == pytest.approx(frechet_distance(gb, ga), rel=1e-6, abs=1e-6)


def test_psd_sqrt_squares_back() -> None:
    m = np.random.default_rng(0).standard_normal((6, 6))
    s = m @ m.T
    root = psd_sqrt(s)
    np.testing.assert_allclose(root @ root, s, atol=1e-9)


def test_drift_is_one_for_reference_windows_and_grows_away_from_them() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5000, 8)) @ rng.standard_normal((8, 8))
    g = fit_gaussian(x)
    assert drift(x, g) == pytest.approx(1.0, rel=1e-4)  # the windows the Gaussian was fitted to
    assert drift(rng.standard_normal((5000, 8)) @ np.linalg.cholesky(g.cov).T + g.mean, g) == pytest.approx(1.0, rel=0.05)
    assert drift(x[:100] + 3.0 * np.sqrt(np.diag(g.cov)), g) > 2.0
    assert drift(np.repeat(g.mean[None], 3, axis=0), g) == pytest.approx(0.0, abs=1e-9)


# ----------------------------------------------------------------------------------------------
# Model-free measures


def click_track(bpm: float, seconds: float = 20.0) -> np.ndarray:
    x = np.zeros(int(seconds * SR))
    n = int(0.005 * SR)
    burst = np.random.default_rng(0).standard_normal(n) * np.exp(-np.arange(n) / (0.001 * SR)) * 0.5
    for t in np.arange(0.1, seconds - 0.01, 60.0 / bpm):
        i = int(round(t * SR))
        x[i : i + n] += burst[: len(x) - i]
    return x


def test_tempo_of_a_click_track_at_120_bpm() -> None:
    assert tempo_bpm(click_track(120.0), SR) == pytest.approx(120.0, rel=0.02)


@settings(max_examples=8, deadline=None)
@given(bpm=st.floats(60.0, 175.0))
def test_tempo_of_click_tracks_across_the_corpus_range(bpm: float) -> None:
    assert tempo_bpm(click_track(bpm), SR) == pytest.approx(bpm, rel=0.02)


def test_tempo_of_silence_and_a_steady_tone_is_nan() -> None:
    assert np.isnan(tempo_bpm(np.zeros(SR * 5), SR))
    assert np.isnan(tempo_bpm(0.3 * np.sin(2 * np.pi * 440 * np.arange(SR * 5) / SR), SR))


def tones(pitches: list[int], seconds: float) -> np.ndarray:
    """Notes with 4 harmonics and a decaying envelope, summed."""
    t = np.arange(int(seconds * SR)) / SR
    envelope = np.minimum(1.0, t / 0.01) * np.exp(-2.0 * t)
    hz = [440.0 * 2 ** ((p - 69) / 12) for p in pitches]
    return 0.1 * envelope * sum(np.sin(2 * np.pi * f * h * t) / h for f in hz for h in range(1, 5))


def cadence_and_scale(chords: list[list[int]], scale: list[int], shift: int) -> np.ndarray:
    parts = [tones([p + shift for p in c], 1.0) for c in chords] + [tones([p + shift], 0.5) for p in scale]
    return np.concatenate(parts)


MAJOR = ([[48, 64, 67], [53, 69, 72], [55, 71, 74], [48, 64, 67]], [60, 62, 64, 65, 67, 69, 71, 72])  # I IV V I, C major scale
MINOR = ([[45, 60, 64], [50, 65, 69], [52, 68, 71], [45, 60, 64]], [57, 59, 60, 62, 64, 65, 67, 69])  # i iv V i, A minor scale


def test_key_of_a_c_major_scale_and_chords() -> None:
    key = key_of(cadence_and_scale(*MAJOR, shift=0), SR)
    assert (key.tonic, key.mode) == ("C", "major")
    assert key.confidence > 0.7
    assert str(key_of(cadence_and_scale(*MINOR, shift=0), SR)) == "A minor"


@settings(max_examples=12, deadline=None)
@given(shift=st.integers(0, 11))
def test_key_follows_transposition(shift: int) -> None:
    names = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
    assert str(key_of(cadence_and_scale(*MAJOR, shift=shift), SR)) == f"{names[shift]} major"


def test_audio_checks_flags() -> None:
    music = make_example(3, 4.0, style="house").audio
    assert audio_checks(music, SR).flags == ()
    assert audio_checks(np.zeros(SR * 2), SR).flags == ("silent",)
    half = np.concatenate([music[: SR * 2], np.zeros(SR * 3, np.float32)])
    assert "mostly_silent" in audio_checks(half, SR).flags
    broken = music.copy()
    broken[100:110] = np.nan
    checks = audio_checks(broken, SR)
    assert "nan" in checks.flags and checks.nan_fraction == pytest.approx(10 / len(music))
    loud = np.clip(music * 20.0, -1.0, 1.0)
    assert "clipping" in audio_checks(loud, SR).flags
    assert "dc_offset" in audio_checks(music + 0.1, SR).flags
    assert audio_checks(np.zeros(0), SR).flags == ("silent",)


# ----------------------------------------------------------------------------------------------
# Prompts


def test_prompts_are_parsed_with_the_corpus_vocabulary(toy: tuple[Path, Path]) -> None:
    for entry in CorpusReader(toy[0]):
        asked = parse_prompt(entry.caption)
        assert asked.style == entry.attributes.style, entry.caption
        assert asked.tempo == entry.attributes.tempo, entry.caption
        assert set(asked.instruments) <= set(entry.attributes.instruments), entry.caption
        assert asked.key in (None, entry.attributes.key), entry.caption
    asked = parse_prompt("Dark trap with trap drums and booming 808s, tempo 140, in F#")
    assert (asked.style, asked.instruments, asked.tempo, asked.key) == ("trap", ("trap_drums", "808_bass"), 140, "F#")
    assert parse_prompt("lo-fi hip hop beat with warm piano chords at 80 bpm").style == "lofi_hip_hop"
    assert parse_prompt("something else entirely") == parse_prompt("something else entirely")
    assert parse_prompt("something else entirely").style is None


def test_shuffled_prompts_are_a_derangement() -> None:
    items = [Item(str(i), np.zeros(10, np.float32), f"prompt {i}") for i in range(7)]
    out = shuffled(items, seed=3)
    assert sorted(it.prompt for it in out) == sorted(it.prompt for it in items)
    assert all(a.prompt != b.prompt for a, b in zip(items, out))


def test_tempo_hit_octave_tolerance() -> None:
    assert tempo_hit(121.0, 120) and not tempo_hit(126.0, 120)
    assert not tempo_hit(60.0, 120) and tempo_hit(60.0, 120, octave=True)
    assert not tempo_hit(float("nan"), 120, octave=True)


# ----------------------------------------------------------------------------------------------
# The probe


def test_probe_training_is_deterministic_and_round_trips(toy: tuple[Path, Path], tmp_path: Path) -> None:
    root, probe_dir = toy
    again = train(root, tmp_path / "again", config=ProbeConfig.tiny(), steps=80, batch=16, seed=0, log=lambda s: None)
    saved = load_probe(probe_dir)
    for name, value in saved.net.state_dict().items():
        torch.testing.assert_close(value, again.net.state_dict()[name], rtol=0, atol=0, msg=name)
    audio = make_example(5, 5.0, style="techno").audio
    np.testing.assert_allclose(saved.embed_audio(audio).embeddings, again.embed_audio(audio).embeddings, atol=1e-6)
    assert saved.reference is not None and saved.reference.dim == ProbeConfig.tiny().embed_dim
    assert set(saved.info["landmarks"]) == {"held_out", "white_noise", "silence"}


def test_fd_probe_is_zero_on_itself_and_grows_with_noise(toy: tuple[Path, Path]) -> None:
    probe = load_probe(toy[1])
    clips = [e.audio for e in fresh_examples(6)]
    assert fd_probe(clips, clips, probe) == pytest.approx(0.0, abs=1e-6)
    rng = np.random.default_rng(0)
    noisy = [[c + level * rng.standard_normal(len(c)).astype(np.float32) for c in clips] for level in (0.003, 0.03, 0.3)]
    distances = [fd_probe(clips, n, probe) for n in noisy]
    assert 0.0 < distances[0] < distances[1] < distances[2]


def test_adherence_of_a_two_style_probe_beats_chance(toy: tuple[Path, Path]) -> None:
    probe = load_probe(toy[1])
    examples = fresh_examples(8)
    report = evaluate([e.audio for e in examples], prompts=[e.caption for e in examples], probe=probe, segment_seconds=2.0)
    a = report.adherence
    assert a is not None and a.windows == 8 * 3  # 6 s = three 2 s windows per example
    assert a.style_accuracy > 0.75  # chance among the two trained styles is 0.5; among all styles 1/9
    assert a.style_probability > 2 * a.style_chance
    floor = evaluate([e.audio for e in examples], prompts=[e.caption for e in examples], probe=probe, segment_seconds=2.0, shuffle_prompts=0)
    assert floor.adherence.style_probability < a.style_probability


def test_evaluate_report_shape(toy: tuple[Path, Path]) -> None:
    probe = load_probe(toy[1])
    long = np.concatenate([e.audio for e in fresh_examples(2)])  # 12 s
    report = evaluate(long, prompts="minimal techno at 130 bpm with acid bass", probe=probe, segment_seconds=4.0)
    (f,) = report.files
    assert f.windows == 6 and len(f.segments) == 3
    assert [(s.start, s.end) for s in f.segments] == [(0.0, 4.0), (4.0, 8.0), (8.0, 12.0)]
    assert f.asked.style == "techno" and f.asked.tempo == 130
    assert all(s.asked_probability is not None and 0.0 <= s.asked_probability <= 1.0 for s in f.segments)
    assert report.reference_windows == probe.reference.count
    json.dumps(report.to_json())  # plain JSON, NaN turned into null


# ----------------------------------------------------------------------------------------------
# Command line


def test_cli_json_output_parses(toy: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, probe_dir = toy
    examples = fresh_examples(2)
    for i, e in enumerate(examples):
        soundfile.write(tmp_path / f"gen{i}.wav", e.audio, SR)
    (tmp_path / "gen0.txt").write_text(examples[0].caption)
    (tmp_path / "gen1.json").write_text(json.dumps({"prompt": examples[1].caption}))
    code = eval_main([str(tmp_path), "--json", "--probe", str(probe_dir), "--reference", str(root), "--segment-seconds", "2"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert [Path(f["name"]).name for f in data["files"]] == ["gen0.wav", "gen1.wav"]
    assert [f["prompt"] for f in data["files"]] == [e.caption for e in examples]
    assert data["fd_probe"] >= 0 and data["adherence"]["windows"] == 6
    assert "train split" in data["reference"]

    from lmdm.cli import main as lmdm_main  # the same through `lmdm eval`

    assert lmdm_main(["eval", str(tmp_path / "gen0.wav"), "--probe", str(probe_dir), "--segment-seconds", "2"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("FD-probe ") and "gen0.wav" in text and "adherence: style top-1" in text


def test_cli_errors_are_one_line_with_exit_code_2(toy: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    probe = ["--probe", str(toy[1])]
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.wav").write_text("not audio")
    cases = {
        str(tmp_path / "missing.wav"): "no such file",
        str(tmp_path / "empty"): "no .wav/.flac/.ogg files",
        str(tmp_path / "bad.wav"): "cannot read audio file",
    }
    for path, message in cases.items():
        assert eval_main([path, *probe]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("lmdm eval: error:") and message in err and "\n" not in err
    soundfile.write(tmp_path / "ok.wav", np.zeros(SR, np.float32), SR)
    assert eval_main([str(tmp_path / "ok.wav"), "--probe", str(tmp_path / "empty")]) == 2
    assert "not a probe directory" in capsys.readouterr().err
    assert eval_main([str(tmp_path / "ok.wav"), *probe, "--segment-seconds", "1"]) == 2
    assert "at least one probe window" in capsys.readouterr().err


@pytest.mark.skipif(not (DEFAULT_PROBE / "probe.json").exists(), reason="the shipped probe is not trained yet")
def test_shipped_probe_loads_and_knows_the_styles() -> None:
    probe = load_probe()
    assert probe.reference is not None and probe.info["held_out"]["style_accuracy"] > 0.5
    size = sum(p.stat().st_size for p in DEFAULT_PROBE.iterdir())
    assert size < 6_000_000
    report = evaluate(make_example(7, 10.0, style="house").audio, prompts="house")
    assert report.files[0].windows == 2


# ----------------------------------------------------------------------------------------------
# Pictures


def test_cli_plot_writes_the_picture(toy: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    matplotlib = pytest.importorskip("matplotlib")
    import matplotlib.image

    for i, e in enumerate(fresh_examples(2)):
        soundfile.write(tmp_path / f"gen{i}.wav", e.audio, SR)
    png = tmp_path / "eval.png"
    assert eval_main([str(tmp_path), "--json", "--probe", str(toy[1]), "--segment-seconds", "2", "--plot", str(png)]) == 0
    assert f"wrote {png}" in capsys.readouterr().err  # stdout is the JSON
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = matplotlib.image.imread(png).shape[:2]
    assert width == 1200 and 1000 < height < 1400  # 10 inches at 120 dpi, four panels and the legend


def test_report_png_keeps_a_flat_level_flat(toy: tuple[Path, Path], tmp_path: Path) -> None:
    """A -20 dBFS tone that moves by +-0.05 dB: the level axis spans >= 12 dB (it used to fill the height)."""
    pytest.importorskip("matplotlib")
    t = np.arange(4 * SR) / SR
    tone = np.sqrt(2) * 0.1 * np.sin(2 * np.pi * 220 * t)  # RMS -20 dBFS
    audio = np.concatenate([tone * 10 ** (d / 20) for d in (0.05, -0.05, 0.0)]).astype(np.float32)
    report = evaluate(audio, probe=load_probe(toy[1]), segment_seconds=4.0, sample_rate=SR)
    levels = [s.rms_db for s in report.files[0].segments]
    assert max(levels) - min(levels) < 0.2 and abs(np.mean(levels) + 20) < 0.1
    figure = report_png(report, tmp_path / "flat.png")
    probability, drift_, tempo, level = figure.axes[:4]
    lo, hi = level.get_ylim()
    assert hi - lo >= 12.0 and lo < min(levels) and hi > max(levels)
    assert level.get_ylabel() == "dBFS" and tempo.get_ylabel() == "BPM" and probability.get_ylabel() == "probability"
    assert drift_.get_ylim()[0] == 0.0 and drift_.get_ylim()[1] >= 2.0 and tempo.get_ylim()[1] - tempo.get_ylim()[0] >= 20.0
    assert level.get_xlabel() == "time (m:ss)" and level.get_xlim() == (0.0, 12.0)


def test_model_quality_prompts_are_held_out_and_spread_over_styles(tmp_path: Path) -> None:
    from lmdm.corpus.reader import CorpusReader
    from lmdm.eval.model_quality import held_out_prompts

    write_corpus(tmp_path, hours=60 * 2.0 / 3600, seed=3, seconds_per_example=2.0, workers=1, progress=False, styles=TOY_STYLES)
    reader = CorpusReader(tmp_path)
    held = [e for e in reader if e.split in ("valid", "test")]
    assert len(held) >= 2  # ~10% of 60 examples
    chosen = held_out_prompts(tmp_path, 2)
    assert len({name for name, _ in chosen}) == 2
    assert all(reader.entry(name).split in ("valid", "test") and reader.entry(name).caption == caption for name, caption in chosen)
    styles = {reader.entry(name).attributes.style for name, _ in chosen}
    assert len(styles) == min(2, len({e.attributes.style for e in held}))  # round-robin over styles
    with pytest.raises(ValueError, match="held-out"):
        held_out_prompts(tmp_path, len(held) + 1)
    # the codec ceiling: the same songs through a model's codec, each with its prompt beside it
    from lmdm.eval.model_quality import render_codec_round_trip
    from lmdm.model.config import ModelConfig
    from lmdm.model.lmdm import build_model

    model = build_model(ModelConfig.tiny(), seed=0)
    render_codec_round_trip(model, tmp_path, chosen, tmp_path / "codec")
    for name, caption in chosen:
        audio, rate = soundfile.read(tmp_path / "codec" / f"{name}.wav")
        song = reader.load_audio(name)
        assert rate == reader.sample_rate and len(audio) == len(song) and np.isfinite(audio).all()
        with torch.no_grad():
            expected = model.codec.decode(model.codec.encode(torch.from_numpy(song)[None, None]))[0, 0].numpy()
        assert np.allclose(audio, expected, atol=1e-4)  # 16-bit wav
        assert (tmp_path / "codec" / f"{name}.txt").read_text().strip() == caption


def test_prompt_sensitivity_measures_how_far_the_prompt_moves_the_prediction(tiny_latents) -> None:
    from lmdm.eval.prompt_sensitivity import main, prompt_sensitivity, relative_change
    from lmdm.model.config import ModelConfig
    from lmdm.model.lmdm import build_model

    assert relative_change(torch.tensor([3.0, 4.0]), torch.tensor([3.0, 0.0])) == pytest.approx(4.0 / 3.0)
    assert relative_change(torch.zeros(2), torch.zeros(2)) == 0.0
    model = build_model(ModelConfig.tiny(), seed=0)
    r = prompt_sensitivity(model, str(tiny_latents), windows=3, times=(0.5,), split="all")
    assert set(r) == {"0.5"} and set(r["0.5"]) == {"context", "no_context"}
    assert all(np.isfinite(v) and v > 0 for v in r["0.5"].values())  # a random text path still moves it
    with torch.no_grad():  # a model whose text paths (cross-attention, pooled) output nothing cannot be moved by any prompt
        for name, p in model.dit.named_parameters():
            if ".cross_attn.to_out" in name or name.startswith("to_global_embed"):
                p.zero_()
    r = prompt_sensitivity(model, str(tiny_latents), windows=3, times=(0.5,), split="all")
    assert r["0.5"] == {"context": 0.0, "no_context": 0.0}
    assert main(["--model", str(tiny_latents), "--latents", str(tiny_latents)]) == 2  # not a model: one line, no trace


def test_music_measures_on_known_signals() -> None:
    from lmdm.eval.music import level_db, space_share, spectral_centroid, tempo_hit

    sr = 16000
    t = np.arange(sr * 2) / sr
    tone = 0.5 * np.sin(2 * np.pi * 1000 * t)
    assert abs(spectral_centroid(tone, sr) - 1000) < 30
    assert abs(level_db(tone) - 20 * np.log10(0.5 / np.sqrt(2))) < 0.1
    gated = tone * (np.floor(t * 4) % 2 == 0)  # on 250 ms, off 250 ms
    assert 0.4 < space_share(gated, sr) < 0.6 and space_share(tone, sr) == 0.0
    assert tempo_hit(121.0, 120.0) == (True, True) and tempo_hit(60.5, 120.0) == (False, True)
    assert tempo_hit(100.0, 120.0) == (False, False) and tempo_hit(float("nan"), 120.0) == (False, False)


def test_music_eval_resumes_its_own_run_and_refuses_another(tiny_latents, tmp_path, monkeypatch, capsys) -> None:
    """python -m lmdm.eval.music end to end on a tiny model: results.json, the ceiling and the streams
    reused by a re-run into the same folder, and a folder of another run refused."""
    import json as _json

    import lmdm
    from lmdm.checkpoint import save_model
    from lmdm.eval.music import main as music_main
    from lmdm.model.config import ModelConfig
    from lmdm.model.lmdm import build_model

    corpus = tiny_latents.parent / "corpus"
    rows = [_json.loads(line) for line in (corpus / "index.jsonl").read_text().splitlines()]
    style = rows[0]["style"]
    for r in rows:  # every song held out: the tiny corpus is the ceiling
        r["split"] = "test"
    held = tmp_path / "corpus"
    held.mkdir()
    (held / "index.jsonl").write_text("".join(_json.dumps(r) + "\n" for r in rows))
    for r in rows:
        (held / f"{r['id']}.flac").symlink_to(corpus / f"{r['id']}.flac")
    model = tmp_path / "model"
    save_model(build_model(ModelConfig.tiny(), seed=0), model)
    args = ["--model", str(model), "--corpus", str(held), "--out", str(tmp_path / "out"), "--seconds", "1",
            "--tempi", "120", "--styles", style, "--songs", "1"]
    assert music_main(args) == 0
    first = _json.loads((tmp_path / "out" / "results.json").read_text())[style]
    assert first["streams"][0]["asked"] == 120 and np.isfinite(first["corpus"]["level_db"])

    def never(*a, **k):
        raise AssertionError("re-rendered a stream the folder already holds")

    monkeypatch.setattr(lmdm, "LiveSession", never)
    monkeypatch.setattr("lmdm.eval.music.style_songs", never)
    assert music_main(args) == 0
    again = _json.loads((tmp_path / "out" / "results.json").read_text())[style]
    assert again["corpus"] == first["corpus"] and again["streams"][0]["level_db"] == pytest.approx(first["streams"][0]["level_db"], abs=0.1)
    assert music_main([*args[:-4], "--seconds", "2"][: len(args)] + ["--styles", style]) == 2
    assert "holds streams of another run" in capsys.readouterr().err
    monkeypatch.undo()
    # --codec: the same songs through the model's codec and back, beside the corpus ceiling
    assert music_main([*args[:5], str(tmp_path / "codec"), *args[6:], "--codec"]) == 0
    coded = _json.loads((tmp_path / "codec" / "results.json").read_text())[style]
    assert coded["corpus"] == first["corpus"]
    assert np.isfinite(coded["codec"]["level_db"]) and coded["codec"]["level_db"] != coded["corpus"]["level_db"]
    assert "through the codec: centroid" in capsys.readouterr().out
