"""Where a model runs (lmdm.model.placement): devices, dtypes, and the stream on them.

The CPU tests run everywhere: the placement's checks and defaults, reduced-precision weights on
the CPU (bfloat16 and float16: cached == uncached within a stated tolerance, and a broken cache is
still caught at that tolerance), the host boundary of the codec, the noise a seed draws. The CUDA
tests skip without a GPU; on one they check the stream there against the CPU's, the cache there,
that no sampler step waits for the device, and a LiveSession playing there.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmdm.model.cache import KVCache
from lmdm.conditioning.text import null_conditioning
from lmdm.model.config import ModelConfig
from lmdm.model.lmdm import build_model
from lmdm.model.placement import FLOAT32_TABLES, HostCodec, Placement, model_placement, place, placement
from lmdm.sampling import randn, sample
from lmdm.session import LiveSession
from lmdm.stream import BlockStream

torch.set_num_threads(1)

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA GPU here")

# cached vs uncached, as a share of the stream's largest |latent|. Measured on the tiny model (seeds
# 0-3, both regimes, CFG 1 and 2.5): bf16 0.3-2.2 %, fp16 0.04-0.2 %; float32 ~1e-6 absolute
# (tests/test_stream.py). A cache that never re-rotates its keys is off by 5-10 % on the same model.
TOLERANCE = {torch.bfloat16: 0.025, torch.float16: 0.005, torch.float32: 1e-5}


def _stream(model, regime: str, use_cache: bool, blocks: int = 6, steps: int = 3, cfg: float = 1.0, seed: int = 0,
            prompt: str = "acid techno") -> torch.Tensor:
    stream = BlockStream(model, regime, use_cache, "fused")
    cond = model.encode_prompt(prompt)
    null = null_conditioning(model.config.cond_dim, model.config.cond_tokens)
    g = torch.Generator().manual_seed(seed)
    return torch.cat([stream.generate(cond, steps=steps, cfg=cfg, uncond=null, generator=g) for _ in range(blocks)], dim=2)


def _gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest difference as a share of the larger stream's largest magnitude."""
    return ((a.cpu() - b.cpu()).abs().max() / torch.maximum(a.abs().max().cpu(), b.abs().max().cpu())).item()


# --- the placement value -------------------------------------------------------------------------

def test_defaults_are_the_cpu_in_float32_and_bfloat16_on_cuda() -> None:
    assert placement() == Placement(torch.device("cpu"), torch.float32)
    assert placement("cpu", "bf16") == Placement(torch.device("cpu"), torch.bfloat16)
    assert placement(dtype="float16").dtype == torch.float16
    assert str(placement("cpu", torch.bfloat16)) == "cpu bfloat16"
    if CUDA:
        assert placement("cuda") == Placement(torch.device("cuda", 0), torch.bfloat16)


@pytest.mark.parametrize("device, words", [("tpu", "unknown torch device"), ("cuda:x", "unknown torch device"),
                                           ("meta", "unsupported torch device")])
def test_a_bad_device_is_one_clear_line(device: str, words: str) -> None:
    with pytest.raises(ValueError, match=words) as e:
        placement(device)
    assert "\n" not in str(e.value)


@pytest.mark.skipif(CUDA, reason="this machine has CUDA")
def test_cuda_without_a_gpu_says_so() -> None:
    with pytest.raises(ValueError, match="CUDA is not available here"):
        placement("cuda")
    with pytest.raises(ValueError, match="CUDA is not available here"):
        LiveSession(build_model(ModelConfig.tiny()), device="cuda")


@pytest.mark.parametrize("dtype", ["int8", "float64", torch.int32, "bf17"])
def test_a_bad_dtype_is_refused(dtype) -> None:
    with pytest.raises(ValueError, match="dtype"):
        placement("cpu", dtype)


def test_reduced_precision_keeps_the_position_tables_in_float32() -> None:
    model = build_model(ModelConfig.tiny(), seed=0)
    before = {name: getattr(model.dit, name).clone() for name in FLOAT32_TABLES}
    place(model, placement("cpu", "bf16"))
    assert model.dit.dtype == torch.bfloat16
    assert model.dit.layers[0].ff.proj.weight.dtype == torch.bfloat16
    for name, table in before.items():  # unrounded: the same float32 numbers as before
        assert getattr(model.dit, name).dtype == torch.float32
        assert torch.equal(getattr(model.dit, name), table)
    assert model_placement(model) == placement("cpu", "bf16")
    place(model, placement())  # and back: float32 weights (rounded once), tables untouched
    assert model.dit.dtype == torch.float32 and torch.equal(model.dit.inv_freq, before["inv_freq"])


# --- reduced precision on the CPU ----------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("regime", ["encdec", "block_causal"])
@pytest.mark.parametrize("cfg", [1.0, 2.5])
def test_cached_equals_uncached_in_reduced_precision(dtype, regime, cfg) -> None:
    model = place(build_model(ModelConfig.tiny(), seed=1), placement("cpu", dtype))
    ref = _stream(model, regime, False, cfg=cfg, seed=3)
    fast = _stream(model, regime, True, cfg=cfg, seed=3)
    assert ref.dtype == fast.dtype == torch.float32  # the sampler's arithmetic stays float32
    assert torch.isfinite(fast).all()
    assert _gap(ref, fast) <= TOLERANCE[dtype]
    full = _stream(build_model(ModelConfig.tiny(), seed=1), regime, True, cfg=cfg, seed=3)  # the float32 model
    assert _gap(full, fast) <= 2 * TOLERANCE[dtype]  # reduced precision plays the same music, rounded


@pytest.mark.parametrize("dtype, margin", [(torch.float16, 5), (torch.bfloat16, 1.5)])
def test_the_reduced_precision_tolerance_still_catches_a_broken_cache(monkeypatch, dtype, margin) -> None:
    """float16's tolerance is 10x below the error of a cache that forgets to re-rotate its keys;
    bfloat16's only 2x: at bfloat16 only a coarse cache bug shows."""
    model = place(build_model(ModelConfig.tiny(), seed=0), placement("cpu", dtype))
    ref = _stream(model, "block_causal", False, blocks=10)
    monkeypatch.setattr(KVCache, "shifted", lambda self, shift, freqs: self)  # keys never re-rotated
    broken = _stream(model, "block_causal", True, blocks=10)
    assert _gap(ref, broken) > margin * TOLERANCE[dtype]


def test_a_session_plays_in_bfloat16_on_the_cpu() -> None:
    model = build_model(ModelConfig.tiny(), seed=0)
    session = LiveSession(model, prompt="dub techno", dtype="bf16", steps=3)
    assert session.placement == placement("cpu", "bf16") and model.dit.dtype == torch.bfloat16
    audio = session.render(3 * session.block_seconds)
    assert audio.dtype == np.float32 and np.isfinite(audio).all() and np.abs(audio).max() > 0
    assert session.next_latents().device.type == "cpu"


def test_a_session_leaves_the_model_where_it_is_by_default() -> None:
    model = place(build_model(ModelConfig.tiny(), seed=0), placement("cpu", "fp16"))
    assert LiveSession(model).placement == placement("cpu", "fp16")
    assert LiveSession(model, device="cpu").placement == placement("cpu")  # a device named: its default dtype


def test_the_bench_runs_in_a_chosen_dtype_and_refuses_a_missing_device(capsys) -> None:
    from lmdm.bench import main

    assert main(["--config", "tiny", "--dtype", "bf16", "--modes", "block_causal", "--blocks", "1", "--warmup", "1", "--json"]) == 0
    assert '"dtype": "bfloat16"' in capsys.readouterr().out
    if not CUDA:
        with pytest.raises(SystemExit) as e:
            main(["--config", "tiny", "--device", "cuda"])
        assert e.value.code == 2 and "CUDA is not available here" in capsys.readouterr().err


# --- the host boundary ---------------------------------------------------------------------------

def test_the_host_codec_returns_cpu_float32_whatever_it_is_given() -> None:
    model = build_model(ModelConfig.tiny(), seed=0)
    codec = HostCodec(model.codec)
    assert codec.hop == model.codec.hop and codec.latent_dim == model.codec.latent_dim  # the inner codec's
    z = torch.randn(1, model.config.latent_dim, 5, dtype=torch.float64)
    audio = codec.stream_decoder().push(z)
    assert audio.dtype == torch.float32 and audio.device.type == "cpu"
    assert torch.equal(audio, model.codec.stream_decoder().push(z.float()))
    assert codec.encode(audio).device.type == "cpu"


def test_a_cpu_generator_draws_the_same_noise_on_every_device() -> None:
    a = randn((2, 3), torch.Generator().manual_seed(5), "cpu")
    assert torch.equal(a, torch.randn((2, 3), generator=torch.Generator().manual_seed(5)))
    assert randn((2, 3), None, "cpu").shape == (2, 3)
    if CUDA:
        b = randn((2, 3), torch.Generator().manual_seed(5), "cuda")
        assert b.device.type == "cuda" and torch.equal(b.cpu(), a)


# --- on a CUDA GPU -------------------------------------------------------------------------------

@needs_cuda
@pytest.mark.parametrize("regime", ["encdec", "block_causal"])
def test_cuda_float32_plays_the_cpu_stream(regime: str) -> None:
    cpu = _stream(build_model(ModelConfig.tiny(), seed=1), regime, True, cfg=2.5, seed=3)
    gpu_model = place(build_model(ModelConfig.tiny(), seed=1), placement("cuda", "float32"))
    torch.backends.cuda.matmul.allow_tf32 = False
    gpu = _stream(gpu_model, regime, True, cfg=2.5, seed=3)
    assert gpu.device.type == "cuda"
    assert _gap(cpu, gpu) <= 1e-3  # the same seed, the same music: only the kernels' rounding differs


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("regime", ["encdec", "block_causal"])
def test_cached_equals_uncached_on_cuda(dtype, regime) -> None:
    model = place(build_model(ModelConfig.tiny(), seed=1), placement("cuda", dtype))
    ref = _stream(model, regime, False, cfg=2.5, seed=3)
    fast = _stream(model, regime, True, cfg=2.5, seed=3)
    assert _gap(ref, fast) <= max(TOLERANCE[dtype], 1e-4)


@needs_cuda
@pytest.mark.parametrize("cfg", [1.0, 2.5])
def test_no_sampler_step_waits_for_the_gpu(cfg: float) -> None:
    """The steps of a block queue their work and go on: torch's sync debug mode raises on any
    host synchronisation (an .item(), a blocking copy) inside the sampler's loop."""
    model = place(build_model(ModelConfig.tiny(), seed=0), placement("cuda"))
    stream = BlockStream(model, "block_causal", True, "fused")
    cond = model.encode_prompt("x")
    null = null_conditioning(model.config.cond_dim, model.config.cond_tokens)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):  # warm: cuBLAS handles, the cache built, a pending block to commit
        stream.generate(cond, steps=4, cfg=cfg, uncond=null, generator=g)
    denoise = stream.denoiser(cond, cfg=cfg, uncond=null, generator=g)
    noise = randn((1, model.config.latent_dim, model.config.block_frames), g, "cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        x0 = sample(denoise, noise, 4, "pingpong", g)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    stream.append(x0)
    assert torch.isfinite(x0).all()


@needs_cuda
def test_a_session_plays_on_cuda() -> None:
    model = build_model(ModelConfig.tiny(), seed=0)
    session = LiveSession(model, prompt="dub techno", device="cuda", steps=3)
    assert session.placement.device.type == "cuda" and session.stream.device.type == "cuda"
    audio = session.render(3 * session.block_seconds)
    assert audio.dtype == np.float32 and np.isfinite(audio).all()
    session.set_prompt("ambient pads", over_blocks=2)
    assert np.isfinite(session.render(2 * session.block_seconds)).all()
