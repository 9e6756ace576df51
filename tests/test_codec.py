"""ConvCodec: protocol contract, streaming == offline, causality, normalisation, training, checkpoints, metrics."""

from __future__ import annotations

import json
import math
import struct

import attrs
import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmdm.codec import synthetic
from lmdm.codec.audio import load_audio, load_audio_dir
from lmdm.codec.base import Codec, StreamDecoder, StreamEncoder
from lmdm.eval.codec_bench import bench_codec
from lmdm.codec.checkpoint import load_codec, save_codec
from lmdm.codec.conv import CausalConv1d, CausalConvTranspose1d, ConvCodec, ConvCodecConfig, PhaseIntegrator, frozen, stft_bases
from lmdm.codec.metrics import (
    chroma_distance,
    frame_spectrum,
    phase_advance_distance,
    griffin_lim,
    log_mel_l1,
    mel_filterbank,
    mel_griffin_lim_baseline,
    multires_stft_distance,
    stft,
)
from lmdm.tensorfile import TensorFileError, load_tensors, save_tensors
from lmdm.train.codec import TrainCodecConfig, codec_loss, random_segments, split_holdout, train_codec, warm_start

SR, HOP = 16000, 640
TINY = ConvCodecConfig(latent_dim=8, width=16, latent_width=16, frame_units=1, latent_units=2)  # real rates and layout
GLIDE = attrs.evolve(TINY, phase_integrator=True)

torch.set_num_threads(1)


def tiny_codec(seed: int, config: ConvCodecConfig = TINY) -> ConvCodec:
    """Random weights and random (non-trivial) latent normalisation."""
    torch.manual_seed(seed)
    codec = ConvCodec(config).eval()
    with torch.no_grad():
        codec.latent_mean.uniform_(-0.5, 0.5)
        codec.latent_std.uniform_(0.5, 2.0)
        codec.decoder.head.weight[2 * config.synthesis_bins :].normal_(0, 0.3)  # phase increments that are not 0
    return codec


def tone(seconds: float, hz: float = 220.0) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    return (0.3 * torch.sin(2 * math.pi * hz * t) + 0.1 * torch.sin(2 * math.pi * 3 * hz * t))[None, None]  # [1, 1, T]


def split(total: int, cuts: list[int]) -> list[tuple[int, int]]:
    """Cut points (any ints) -> consecutive [start, stop) ranges covering 0..total, empty ranges allowed."""
    points = [0, *sorted(c % (total + 1) for c in cuts), total]
    return list(zip(points[:-1], points[1:]))


# ----------------------------------------------------------------------------------------------
# Contract


def test_protocol_and_rates():
    codec = ConvCodec()
    assert isinstance(codec, Codec)
    assert isinstance(codec.stream_decoder(), StreamDecoder) and isinstance(codec.stream_encoder(), StreamEncoder)
    assert (codec.sample_rate, codec.channels, codec.hop, codec.frame_rate, codec.latent_dim) == (16000, 1, 640, 25.0, 32)
    assert all(not p.requires_grad for p in (codec.encoder.stft.weight, codec.decoder.istft.weight))


def test_shapes_and_errors():
    codec = tiny_codec(0)
    with torch.no_grad():
        z = codec.encode(torch.zeros(3, 1, 5 * HOP))
        assert z.shape == (3, 8, 5)
        assert codec.decode(z).shape == (3, 1, 5 * HOP)
    with pytest.raises(ValueError, match="multiple of hop"):
        codec.encode(torch.zeros(1, 1, HOP + 1))
    with pytest.raises(ValueError, match=r"\[batch, 1, samples\]"):
        codec.encode(torch.zeros(1, 2, HOP))
    with pytest.raises(ValueError, match="latents must be"):
        codec.decode(torch.zeros(1, 7, 2))
    with pytest.raises(ValueError, match="multiple"):
        ConvCodecConfig(n_fft=500, frame_hop=160)
    assert codec.stream_decoder().push(torch.zeros(2, 8, 0)).shape == (2, 1, 0)


def test_stft_bases_are_a_causal_perfect_reconstruction_pair():
    analysis, synthesis = stft_bases(640, 160)
    stft_layer = frozen(CausalConv1d(1, 642, 640, stride=160, bias=False), analysis)
    istft_layer = frozen(CausalConvTranspose1d(642, 1, 640, 160, bias=False), synthesis)
    x = torch.randn(1, 1, 20 * 160, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        spec = stft_layer(x)  # [1, 642, 20]: frame j covers samples [(j + 1) * 160 - 640, (j + 1) * 160)
        y = istft_layer(spec)
    ref = torch.stft(x[0, 0, :640], 640, 640, window=torch.hann_window(640), center=False, return_complex=True)[:, 0]
    assert torch.allclose(spec[0, :321, 3], ref.real, atol=1e-3) and torch.allclose(spec[0, 321:, 3], ref.imag, atol=1e-3)
    assert (y[..., 480 + 640 :] - x[..., 640:-480]).abs().max() < 1e-4  # identity, delayed by n_fft - hop


# ----------------------------------------------------------------------------------------------
# Streaming == offline, causality


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), batch=st.integers(1, 3), frames=st.integers(1, 14), cuts=st.lists(st.integers(0, 99), max_size=6),
       glide=st.booleans())
def test_stream_decoder_equals_offline(seed, batch, frames, cuts, glide):
    codec = tiny_codec(seed, GLIDE if glide else TINY)
    z = torch.randn(batch, 8, frames, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        offline = codec.decode(z)
    decoder = codec.stream_decoder()
    streamed = torch.cat([decoder.push(z[..., a:b]) for a, b in split(frames, cuts)], dim=-1)
    assert streamed.shape == offline.shape
    assert (streamed - offline).abs().max() <= 1e-4 * min(1.0, offline.abs().max())  # absolute and relative
    decoder.reset()  # after reset, the same stream again gives the same audio
    assert (decoder.push(z) - offline).abs().max() <= 1e-4


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), batch=st.integers(1, 3), frames=st.integers(1, 8), cuts=st.lists(st.integers(0, 10**6), max_size=6))
def test_stream_encoder_equals_offline(seed, batch, frames, cuts):
    codec = tiny_codec(seed)
    total = frames * HOP + 123  # a partial frame at the end stays pending
    audio = 0.3 * torch.randn(batch, 1, total, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        offline = codec.encode(audio[..., : frames * HOP])
    encoder = codec.stream_encoder()
    streamed = torch.cat([encoder.push(audio[..., a:b]) for a, b in split(total, cuts)], dim=-1)
    assert streamed.shape == offline.shape
    assert (streamed - offline).abs().max() <= 1e-4 * min(1.0, offline.abs().max())


def test_default_size_streaming_in_2s_blocks():
    codec = tiny_codec(1, ConvCodecConfig())
    z = torch.randn(1, 32, 150)
    with torch.no_grad():
        offline = codec.decode(z)
    decoder = codec.stream_decoder()
    streamed = torch.cat([decoder.push(z[..., i : i + 50]) for i in range(0, 150, 50)], dim=-1)
    assert (streamed - offline).abs().max() <= 1e-4


def test_phase_integrator_streams_like_offline_and_wraps():
    increment = torch.full((1, 2, 100_000), 0.7)  # a long stream: the running phase must not lose precision
    integrator = PhaseIntegrator()
    offline = integrator(increment)
    expected = torch.arange(1, 100_001, dtype=torch.float64) * increment[0, 0, 0].double()

    def angle_error(a: torch.Tensor, b: torch.Tensor) -> float:  # apart on the circle: 2 pi - 1e-7 and 0 are close
        return float((torch.remainder(a.double() - b.double() + math.pi, 2 * math.pi) - math.pi).abs().max())

    assert angle_error(offline[0, 0], expected) < 1e-5 and offline.min() >= 0 and offline.max() <= 2 * math.pi
    state: dict = {}
    streamed = torch.cat([integrator(increment[..., a:b], state) for a, b in split(100_000, [3, 4, 50_000, 99_999])], dim=-1)
    assert angle_error(streamed, offline) < 1e-5


def steady_decoder_tone(config: ConvCodecConfig, hz: float) -> float:
    """Set a decoder's head to ignore its input and play one bin; with the phase integrator, bend it to `hz`.
    -> the frequency (1 Hz resolution) of the strongest partial of what it plays."""
    codec = ConvCodec(config).eval()
    bins, bin_hz = config.synthesis_bins, SR / config.synthesis_fft
    k = round(hz / bin_hz)
    with torch.no_grad():
        codec.decoder.head.weight.zero_()
        codec.decoder.head.bias.zero_()
        codec.decoder.head.bias[:bins] = -20.0  # silent ...
        codec.decoder.head.bias[k] = 0.0  # ... but for bin k
        if config.phase_integrator:  # radians per frame that move bin k's centre to hz
            codec.decoder.head.bias[2 * bins + k] = math.atanh(2 * (hz - k * bin_hz) * config.frame_hop / SR)
        audio = codec.decode_raw(torch.zeros(1, config.latent_dim, 50))[0, 0, SR:]  # 1 s after the start
    spectrum = np.abs(np.fft.rfft(audio.numpy() * np.hanning(len(audio))))
    return float(np.argmax(spectrum) * SR / len(audio))


def test_only_the_phase_integrator_holds_a_steady_tone_between_bin_centres():
    # Constant latents give every frame the same head output; a steady partial then sits on a bin
    # centre (multiples of 50 Hz) unless a running phase turns it (the module doc of lmdm.codec.conv).
    assert steady_decoder_tone(TINY, 440.0) == pytest.approx(450.0, abs=1.0)
    assert steady_decoder_tone(GLIDE, 440.0) == pytest.approx(440.0, abs=1.0)
    assert steady_decoder_tone(GLIDE, 261.63) == pytest.approx(261.63, abs=1.0)


def test_warm_start_keeps_the_sound_and_grows_the_head(tmp_path):
    source = tiny_codec(5)
    save_codec(source, tmp_path / "src")
    torch.manual_seed(9)
    grown = ConvCodec(GLIDE).eval()
    copied = warm_start(grown, tmp_path / "src")
    assert "decoder.head.weight" in copied and "latent_std" in copied
    z = torch.randn(1, 8, 6)
    with torch.no_grad():
        assert torch.equal(grown.decode(z), source.decode(z))  # the new increments start at 0
    with pytest.raises(TensorFileError, match="is .* here"):
        warm_start(ConvCodec(attrs.evolve(TINY, width=24)), tmp_path / "src")


def test_decoder_is_causal():
    codec = tiny_codec(2)
    z = torch.randn(2, 8, 10)
    changed = z.clone()
    changed[..., 6:] += torch.randn(2, 8, 4)
    with torch.no_grad():
        a, b = codec.decode(z), codec.decode(changed)
    assert torch.equal(a[..., : 6 * HOP], b[..., : 6 * HOP])
    assert not torch.allclose(a[..., 6 * HOP :], b[..., 6 * HOP :])


def test_encoder_is_causal():
    codec = tiny_codec(3)
    x = 0.3 * torch.randn(1, 1, 10 * HOP)
    changed = x.clone()
    changed[..., 6 * HOP :] = 0.3 * torch.randn(1, 1, 4 * HOP)
    with torch.no_grad():
        a, b = codec.encode(x), codec.encode(changed)
    assert torch.equal(a[..., :6], b[..., :6])  # frame k sees samples up to (k + 1) * hop - 1 only
    assert not torch.allclose(a[..., 6:], b[..., 6:])


# ----------------------------------------------------------------------------------------------
# Normalisation


def test_normalisation_round_trip():
    codec = tiny_codec(4)
    x = 0.3 * torch.randn(4, 1, 20 * HOP)
    with torch.no_grad():
        raw = codec.encode_raw(x)
        codec.set_latent_stats(raw)
        z = codec.encode(x)
        flat = z.transpose(0, 1).reshape(8, -1)
        assert flat.mean(1).abs().max() < 1e-4 and (flat.std(1) - 1).abs().max() < 1e-3
        assert torch.allclose(codec.denormalise(codec.normalise(raw)), raw, atol=1e-5)
        assert torch.allclose(codec.decode(z), codec.decode_raw(raw), atol=1e-5)


# ----------------------------------------------------------------------------------------------
# Training


def test_training_steps_reduce_loss():
    torch.manual_seed(0)
    codec = ConvCodec(attrs.evolve(TINY, latent_noise=0.0))
    cfg = TrainCodecConfig()
    audio = torch.cat([tone(0.4, 220.0), tone(0.4, 550.0)])[..., : 10 * HOP]  # [2, 1, 6400]
    opt = torch.optim.AdamW([p for p in codec.parameters() if p.requires_grad], lr=5e-3)
    losses = []
    for _ in range(25):
        loss, parts = codec_loss(codec, audio, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.9 * losses[0], losses
    assert set(parts) == {"loss", "sc", "logmag", "l1", "kl"}


def test_random_segments_avoid_silence_and_holdout_split():
    silent, loud = np.zeros(SR, np.float32), tone(1.0).flatten().numpy()
    batch = random_segments([silent, loud], 12, 8 * HOP, np.random.default_rng(0))
    assert batch.shape == (12, 1, 8 * HOP) and batch.abs().max() <= 1.0
    assert (batch.square().mean(-1).sqrt() > 1e-3).all()  # every crop redrawn until it has sound
    train, held = split_holdout([np.full(3, i, np.float32) for i in range(20)])
    assert len(train) == 18 and len(held) == 2 and not {c[0] for c in train} & {c[0] for c in held}


def test_train_codec_checkpoints_and_resumes(tmp_path):
    clips = synthetic.synthetic_clips(4, 1.0, seed=5, speech_prob=0.0)
    cfg = TrainCodecConfig(batch_size=2, segment_seconds=0.2, save_every=2, log_every=1)
    logs: list[dict] = []
    codec = train_codec(clips, TINY, steps=2, out=tmp_path, train=cfg, log=logs.append)
    assert {p.name for p in tmp_path.iterdir()} >= {"codec.json", "codec.safetensors", "optimizer.safetensors", "train_state.json", "log.jsonl"}
    assert json.loads((tmp_path / "train_state.json").read_text())["step"] == 2
    loaded = load_codec(tmp_path)
    for (k, a), b in zip(codec.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    logs.clear()
    train_codec(clips, TINY, steps=3, out=tmp_path, train=cfg, log=logs.append)
    assert logs[0] == {"resumed_from_step": 2, "out": str(tmp_path)}
    assert [r["step"] for r in logs[1:] if "loss" in r] == [3]
    with pytest.raises(TensorFileError, match="use another --out"):
        train_codec(clips, attrs.evolve(TINY, latent_dim=4), steps=4, out=tmp_path, train=cfg, log=logs.append)


def test_pitch_run_warm_starts_logs_its_losses_and_stops_at_a_step(tmp_path):
    clips = synthetic.synthetic_clips(4, 1.0, seed=5, speech_prob=0.0)
    cfg = TrainCodecConfig(batch_size=2, segment_seconds=0.2, save_every=100, log_every=1, chroma_weight=1.0, phase_weight=1.0, l1_weight=0.0)
    save_codec(tiny_codec(6), tmp_path / "src")
    logs: list[dict] = []
    train_codec(clips, GLIDE, steps=10, out=tmp_path / "run", train=cfg, log=logs.append, init=tmp_path / "src", stop_at=2)
    assert logs[0]["init"] == str(tmp_path / "src") and logs[0]["tensors_copied"] > 10
    assert [r["step"] for r in logs if "loss" in r] == [1, 2]
    assert all(r["phase"] > 0 and r["chroma"] > 0 for r in logs if "loss" in r)
    assert json.loads((tmp_path / "run" / "train_state.json").read_text())["step"] == 2  # saved at the stop
    logs.clear()
    train_codec(clips, GLIDE, steps=10, out=tmp_path / "run", train=cfg, log=logs.append, init=tmp_path / "src", stop_at=3)
    assert logs[0] == {"resumed_from_step": 2, "out": str(tmp_path / "run")}  # a checkpoint wins over init
    assert [r["step"] for r in logs if "loss" in r] == [3]


def test_resume_continues_exactly(tmp_path):
    clips = synthetic.synthetic_clips(3, 1.0, seed=6, speech_prob=0.0)
    cfg = TrainCodecConfig(batch_size=2, segment_seconds=0.2, save_every=100, log_every=100)
    straight = train_codec(clips, TINY, steps=4, out=tmp_path / "a", train=cfg, log=lambda r: None)
    train_codec(clips, TINY, steps=2, out=tmp_path / "b", train=cfg, log=lambda r: None)
    resumed = train_codec(clips, TINY, steps=4, out=tmp_path / "b", train=cfg, log=lambda r: None)
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k


# ----------------------------------------------------------------------------------------------
# Checkpoint files


def test_tensorfile_round_trip(tmp_path):
    tensors = {"w": torch.randn(3, 4), "i": torch.arange(5), "h": torch.randn(2).half(), "b": torch.tensor([True, False]), "e": torch.zeros(0, 2)}
    save_tensors(tmp_path / "t.safetensors", tensors, {"note": "hi"})
    loaded, meta = load_tensors(tmp_path / "t.safetensors")
    assert meta == {"note": "hi"} and set(loaded) == set(tensors)
    for k, v in tensors.items():
        assert loaded[k].dtype == v.dtype and torch.equal(loaded[k], v)
    raw = (tmp_path / "t.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0 and json.loads(raw[8 : 8 + n])["w"]["dtype"] == "F32"  # the safetensors layout


def test_codec_save_load_round_trip(tmp_path):
    codec = tiny_codec(7)
    save_codec(codec, tmp_path, info={"step": 1})
    loaded = load_codec(tmp_path)
    x = 0.3 * torch.randn(1, 1, 4 * HOP)
    with torch.no_grad():
        assert torch.equal(codec.decode(codec.encode(x)), loaded.decode(loaded.encode(x)))
    assert loaded.config == codec.config


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[:100], "does not fit|truncated"),
        (lambda b: b[:-8], "truncated"),
        (lambda b: b"\x05" + b[1:], "not valid JSON|does not fit"),
        (lambda b: b"", "too short"),
    ],
)
def test_corrupt_weights_give_clear_error(tmp_path, damage, message):
    save_codec(tiny_codec(8), tmp_path)
    path = tmp_path / "codec.safetensors"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(TensorFileError, match=message) as e:
        load_codec(tmp_path)
    assert "codec.safetensors" in str(e.value)


def test_mismatched_weights_give_clear_error(tmp_path):
    save_codec(tiny_codec(9), tmp_path)
    doc = json.loads((tmp_path / "codec.json").read_text())
    doc["config"]["latent_dim"] = 16
    (tmp_path / "codec.json").write_text(json.dumps(doc))
    with pytest.raises(TensorFileError, match=r"does not match the model config.*latent_mean: file \(8,\) vs model \(16,\)"):
        load_codec(tmp_path)
    doc["config"]["bogus"] = 1
    (tmp_path / "codec.json").write_text(json.dumps(doc))
    with pytest.raises(TensorFileError, match="unknown ConvCodecConfig fields"):
        load_codec(tmp_path)


# ----------------------------------------------------------------------------------------------
# Metrics and the baseline


def test_metrics_zero_for_identical_and_large_for_noise():
    x = tone(1.0)
    noise = 0.3 * torch.randn(1, 1, SR, generator=torch.Generator().manual_seed(0))
    assert multires_stft_distance(x, x) == 0.0 and log_mel_l1(x, x, SR) == 0.0
    assert multires_stft_distance(x, noise) > 3.0 and log_mel_l1(x, noise, SR) > 2.0
    slightly = x * 1.05
    assert multires_stft_distance(x, slightly) < 0.2 and log_mel_l1(x, slightly, SR) < 0.1


def test_chroma_distance_hears_pitch_classes():
    def sine(hz: float, amp: float = 0.3) -> torch.Tensor:
        return amp * torch.sin(2 * math.pi * hz * torch.arange(SR) / SR)

    c4, cs4, c5 = sine(261.63), sine(277.18), sine(523.25, 0.1)
    assert chroma_distance(c4, c4, SR).item() == pytest.approx(0.0, abs=1e-6)
    assert chroma_distance(c4, cs4, SR).item() > 1.5  # a semitone away: another pitch class
    assert chroma_distance(c4, c5, SR).item() < 0.3  # an octave up, quieter: the same pitch class
    silent_then_c4 = torch.cat([torch.zeros(SR), c4])
    assert chroma_distance(silent_then_c4, torch.cat([cs4, c4]), SR).item() < 0.1  # silent reference frames weigh ~nothing


def test_phase_advance_distance_uses_the_decoders_framing():
    t = torch.arange(SR) / SR
    x = (0.3 * torch.sin(2 * math.pi * 440 * t) + 0.1 * torch.sin(2 * math.pi * 1234 * t + 1))[None, None]
    spec = frame_spectrum(x, 320, 160)  # [1, 1, 161, 100]
    decoder = ConvCodec(ConvCodecConfig()).decoder
    with torch.no_grad():  # the decoder's synthesis of these frames is the signal itself: same framing
        y = decoder.synthesise(spec.abs()[:, 0], torch.angle(spec)[:, 0])
    assert (y[..., 320:] - x[..., 320:]).abs().max() < 1e-5  # the first frame has no overlap partner
    assert phase_advance_distance(x, torch.angle(spec), 320, 160).item() == pytest.approx(0.0, abs=1e-6)
    sharp = frame_spectrum(0.3 * torch.sin(2 * math.pi * 460 * t)[None, None], 320, 160)  # 20 Hz off
    assert phase_advance_distance(x, torch.angle(sharp), 320, 160).item() > 0.5
    assert phase_advance_distance(x, torch.angle(spec) + 1.0, 320, 160).item() == pytest.approx(0.0, abs=1e-5)  # absolute phase is free
    with pytest.raises(ValueError, match="does not match"):
        phase_advance_distance(x.repeat(2, 1, 1), torch.angle(spec)[:, 0].repeat(2, 1, 1), 320, 160)  # [B, 1, T] vs [B, F, n]


def test_mel_filterbank_shape():
    fb = mel_filterbank(1024, 80, SR)
    assert fb.shape == (80, 513)
    assert fb.min() >= 0 and fb.max() <= 1.0 + 1e-6
    assert (fb.sum(1) > 0).all()  # no empty band
    peaks = fb.argmax(1)
    assert (peaks[1:] >= peaks[:-1]).all()  # bands go up in frequency


def test_griffin_lim_and_baseline():
    x = tone(1.0)
    mag = stft(x, 1024, 256).abs()
    y = griffin_lim(mag, 1024, 256, x.shape[-1], iters=32)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert multires_stft_distance(x, y) < 1.0  # full-resolution magnitude: close
    base = mel_griffin_lim_baseline(x, SR, n_mels=32, hop=HOP, iters=16)
    assert base.shape == x.shape and torch.isfinite(base).all()
    assert multires_stft_distance(x, base) < multires_stft_distance(x, torch.zeros_like(x) + 1e-4)


# ----------------------------------------------------------------------------------------------
# Data, pictures, bench


def test_synthetic_is_deterministic_and_bounded(monkeypatch):
    a = synthetic.synthetic_clips(3, 1.0, seed=1, speech_prob=0.0)
    b = synthetic.synthetic_clips(3, 1.0, seed=1, speech_prob=0.0)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert all(c.shape == (SR,) and c.dtype == np.float32 and np.abs(c).max() <= 1.0 for c in a)
    monkeypatch.setattr(synthetic.shutil, "which", lambda name: None)
    assert synthetic.speech(np.random.default_rng(0), SR) is None  # no espeak-ng: skipped cleanly
    assert synthetic.synthetic_clip(np.random.default_rng(0), 1.0, speech_prob=1.0).shape == (SR,)


def test_load_audio_converts_and_rejects(tmp_path):
    stereo = np.stack([np.linspace(-0.5, 0.5, 22050)] * 2, axis=1).astype(np.float32)
    sf.write(tmp_path / "a.wav", stereo, 22050)
    audio = load_audio(tmp_path / "a.wav", SR)
    assert audio.shape == (SR,) and audio.dtype == np.float32
    (tmp_path / "bad.flac").write_bytes(b"not audio")
    with pytest.raises(ValueError, match="bad.flac"):
        load_audio_dir(tmp_path, SR)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .wav/.flac files"):
        load_audio_dir(tmp_path / "empty", SR)
    with pytest.raises(ValueError, match="does not exist"):
        load_audio_dir(tmp_path / "missing", SR)


def test_bench_runs():
    result = bench_codec(tiny_codec(10), seconds=0.4, block_seconds=0.2, repeats=1)
    assert set(result) == {"encode", "decode", "stream_decode", "realtime_factor"}
    assert all(v > 0 for v in result.values())


# the pitch probe (lmdm/eval/pitch_probe.py) ----------------------------------------------------


def test_pitch_probe_frame_features_stack_neighbours() -> None:
    from lmdm.eval.pitch_probe import frame_features

    z = torch.arange(12, dtype=torch.float32).reshape(2, 6)  # [D=2, F=6]
    f = frame_features(z, neighbours=1)
    assert f.shape == (6, 6)
    np.testing.assert_array_equal(f[0], [0, 0, 0, 6, 1, 7])  # [previous (zero pad) | this | next]
    np.testing.assert_array_equal(f[5], [4, 10, 5, 11, 0, 0])


def test_pitch_probe_finds_pitch_that_is_there_and_not_pitch_that_is_not() -> None:
    from lmdm.eval.pitch_probe import accuracy, train_classifier

    rng = np.random.default_rng(0)
    y = rng.integers(0, 12, 3000)
    carried = rng.normal(size=(3000, 20)) * 0.3
    carried[np.arange(3000), y] += 2.0  # the class is written in the features
    lost = rng.normal(size=(3000, 20))  # nothing about the class
    for x, good in ((carried, True), (lost, False)):
        model = train_classifier(x[:2000], y[:2000], hidden=32, steps=300)
        acc = accuracy(model, x[2000:], y[2000:])
        assert (acc > 0.9) if good else (acc < 0.2), acc


def test_pitch_probe_runs_on_a_corpus(tmp_path, capsys) -> None:
    from lmdm.codec.placeholder import PlaceholderCodec
    from lmdm.eval.pitch_probe import main, measure, round_trip
    from lmdm.corpus import write_corpus

    write_corpus(tmp_path, hours=30 * 4.0 / 3600, seed=2, seconds_per_example=4.0, workers=1, progress=False)
    codec = PlaceholderCodec(16000, 640, 8, 1)
    r = measure(codec, str(tmp_path), train_songs=8, test_songs=4, seconds=2.0, steps=20, test_split="valid")  # this corpus's test songs have no lead
    assert r["train_frames"] > 0 and r["test_frames"] > 0
    with pytest.raises(ValueError, match="no frame of the test-split songs has a lead note"):
        measure(codec, str(tmp_path), train_songs=8, test_songs=4, seconds=2.0, steps=20)
    assert r["train_frames"] > 0 and r["test_frames"] > 0
    assert 0.0 <= r["test_accuracy"] <= 1.0 and 1 / 12 <= r["chance"] <= 1.0
    rt = round_trip(codec, str(tmp_path), songs=4, seconds=2.0, split="valid")
    assert rt["windows"] > 0 and 0.0 <= rt["round_trip"] <= 1.0 and rt["real"] > 0.3  # the tracker reads real leads
    assert main(["--codec", "default", "--corpus", str(tmp_path / "missing")]) == 2
    assert "error:" in capsys.readouterr().err
