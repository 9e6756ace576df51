"""`python -m lmdm.bench` (or `lmdm bench`): how much the KV cache saves, measured.

For one model config, runs each generation mode on a stream in its steady state (the history
is primed with enough random latents that every mode does its full per-block work) and prints
the median wall time per block, the forward FLOPs of one block (counted by
torch.utils.flop_counter, not estimated), speed-up and FLOP ratio against `naive`, the
real-time factor (generation + decode) and the KV-cache bytes.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from typing import Any

import attrs
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from lmdm.conditioning.text import null_conditioning
from lmdm.model import linear
from lmdm.model.config import ModelConfig
from lmdm.model.lmdm import LMDM, build_model
from lmdm.stream import BlockStream

def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """torch's counter has no formula for the CPU attention kernel: count it like the GPU ones
    (dense QK^T and AV; masked-out pairs are computed too, so they count)."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _onednn_linear_flops(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
    """lmdm.model.linear's oneDNN matmul: 2 * rows * in * out, like aten.mm."""
    return 2 * math.prod(x_shape[:-1]) * w_shape[0] * w_shape[1]


def count_flops() -> FlopCounterMode:
    return FlopCounterMode(display=False, custom_mapping={
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops,
        torch.ops.mkldnn._linear_pointwise: _onednn_linear_flops,
    })


# (label, regime, use_cache, commit)
MODES: tuple[tuple[str, str, bool, str], ...] = (
    ("naive", "naive", False, "separate"),
    ("encdec", "encdec", True, "separate"),
    ("block_causal", "block_causal", True, "fused"),  # the default: commit fused into the first step
    ("block_causal_separate", "block_causal", True, "separate"),
    ("encdec_nocache", "encdec", False, "separate"),
    ("block_causal_nocache", "block_causal", False, "separate"),
)


@attrs.frozen
class ModeResult:
    mode: str
    regime: str
    use_cache: bool
    commit: str
    block_ms: float  # median generation time per block
    block_ms_min: float
    decode_ms: float  # median decode time per block
    gflops: float  # forward FLOPs per block, counted
    real_time_factor: float  # (generation + decode) / block duration
    cache_bytes: int
    speedup_vs_naive: float = 0.0
    flop_ratio_vs_naive: float = 0.0
    efficiency: float = 0.0  # speed-up / FLOP ratio: 1.0 means time fell exactly as FLOPs did


def _stream(model: LMDM, regime: str, use_cache: bool, commit: str, seed: int) -> BlockStream:
    s = BlockStream(model, regime, use_cache, commit)
    g = torch.Generator().manual_seed(seed)
    s.prime(torch.randn(1, model.config.latent_dim, s.keep, generator=g))
    return s


def bench_mode(model: LMDM, label: str, regime: str, use_cache: bool, commit: str, *, blocks: int, warmup: int, steps: int, sampler: str, prompt: str,
               bf16: bool = False, cfg: float = 1.0) -> ModeResult:
    cond = model.encode_prompt(prompt)
    null = null_conditioning(model.config.cond_dim, model.config.cond_tokens)
    stream = _stream(model, regime, use_cache, commit, seed=1)
    g = torch.Generator().manual_seed(0)
    decoder = model.codec.stream_decoder()

    def generate() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return stream.generate(cond, steps=steps, sampler=sampler, cfg=cfg, uncond=null, generator=g).float()

    def one_block() -> tuple[float, float]:
        t0 = time.perf_counter()
        x = generate()
        t1 = time.perf_counter()
        with torch.no_grad():
            decoder.push(x)
        return (t1 - t0) * 1000, (time.perf_counter() - t1) * 1000

    for _ in range(max(warmup, 1)):  # the first block after priming bootstraps the cache: not steady state
        one_block()
    with count_flops() as counter:
        generate()
    flops = counter.get_total_flops()
    times = [one_block() for _ in range(blocks)]
    gen = [a for a, _ in times]
    dec = [b for _, b in times]
    block_s = model.config.block_seconds
    return ModeResult(
        mode=label, regime=regime, use_cache=use_cache, commit=commit,
        block_ms=statistics.median(gen), block_ms_min=min(gen), decode_ms=statistics.median(dec),
        gflops=flops / 1e9, real_time_factor=(statistics.median(gen) + statistics.median(dec)) / 1000 / block_s,
        cache_bytes=stream.cache_bytes,
    )


def _step_linears(model: LMDM) -> list[torch.nn.Linear]:
    """The linear layers one denoising step runs (not the once-per-prompt text ones)."""
    dit = model.dit
    skip = {id(m) for m in dit.to_cond_embed.modules()} | {id(layer.cross_attn.to_kv) for layer in dit.layers}
    return [m for m in dit.modules() if isinstance(m, torch.nn.Linear) and id(m) not in skip]


def matmul_throughput(model: LMDM, rows: int, repeats: int = 5) -> float:
    """GFLOP/s of one step's linear layers at `rows` query rows, run in model order so that each
    weight comes from memory as it does in a real step (the whole set is larger than the caches)."""
    layers = _step_linears(model)
    xs = {m.in_features: torch.randn(1, rows, m.in_features) for m in layers}
    flops = sum(2 * rows * m.in_features * m.out_features for m in layers)

    def one_pass() -> None:
        for m in layers:
            m(xs[m.in_features])

    with torch.no_grad():
        one_pass()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            one_pass()
            times.append(time.perf_counter() - t0)
    return flops / statistics.median(times) / 1e9


def matmul_ceiling(model: LMDM, batch: int = 1) -> dict[str, float]:
    """The efficiency the matmuls alone allow: a cached step runs (B + 1) query rows per sequence, a
    naive step (C + B + 1); if a cached matmul runs at a lower GFLOP/s, the time cannot fall as far as
    the FLOPs do. ceiling = GFLOP/s at the cached rows / GFLOP/s at the naive rows."""
    c = model.config
    cached_rows, naive_rows = batch * (c.block_frames + 1), batch * (c.context_frames + c.block_frames + 1)
    cached, naive = matmul_throughput(model, cached_rows), matmul_throughput(model, naive_rows)
    return {"cached_rows": cached_rows, "naive_rows": naive_rows, "cached_gflops": cached, "naive_gflops": naive, "ceiling": cached / naive}


def first_audio_ms(model: LMDM, prompt: str, steps: int, sampler: str) -> float:
    """Wall time from creating a LiveSession (model already loaded) to holding its first block of audio."""
    from lmdm.session import LiveSession

    t0 = time.perf_counter()
    LiveSession(model, prompt=prompt, regime="block_causal", steps=steps, sampler=sampler).next_block()
    return (time.perf_counter() - t0) * 1000


def run(config: ModelConfig | None = None, *, model: LMDM | None = None, modes: list[str] | None = None, blocks: int = 10, warmup: int = 2, steps: int = 8,
        sampler: str = "pingpong", threads: int | None = None, seed: int = 0, prompt: str = "deep house with warm chords", bf16: bool = False,
        cfg: float = 1.0, ceiling: bool = False) -> dict[str, Any]:
    """Bench a preset `config` with random weights, or a given (trained) `model`."""
    if threads:
        torch.set_num_threads(threads)
    if model is None:
        if config is None:
            raise ValueError("give a config or a model")
        model = build_model(config, seed=seed)
    config = model.config
    chosen = [m for m in MODES if modes is None or m[0] in modes]
    results = [bench_mode(model, *m, blocks=blocks, warmup=warmup, steps=steps, sampler=sampler, prompt=prompt, bf16=bf16, cfg=cfg) for m in chosen]
    naive = next((r for r in results if r.mode == "naive"), None)
    if naive is not None:
        results = [
            attrs.evolve(r, speedup_vs_naive=naive.block_ms / r.block_ms, flop_ratio_vs_naive=naive.gflops / r.gflops,
                         efficiency=(naive.block_ms / r.block_ms) / (naive.gflops / r.gflops))
            for r in results
        ]
    return {
        "model": model.name,
        "config": config.to_dict(),
        "parameters": model.parameters,
        "first_audio_ms": first_audio_ms(model, prompt, steps, sampler),
        "block_seconds": config.block_seconds,
        "steps": steps,
        "sampler": sampler,
        "dtype": "bf16 autocast" if bf16 else "fp32",
        "cfg": cfg,
        "matmul_ceiling": matmul_ceiling(model, 1 if cfg == 1.0 else 2) if ceiling and not bf16 else None,
        "blocks_timed": blocks,
        "threads": torch.get_num_threads(),
        "linear_kernel": linear.kernel(),
        "torch": torch.__version__,
        "results": [attrs.asdict(r) for r in results],
    }


def format_table(report: dict[str, Any]) -> str:
    c = report["config"]
    lines = [
        f"model: width {c['width']} x depth {c['depth']}, {report['parameters'] / 1e6:.1f}M params; "
        f"block {c['block_frames']} frames = {report['block_seconds']:.2f} s, context {c['context_blocks']} blocks; "
        f"{report['steps']} {report['sampler']} steps; CFG {report.get('cfg', 1.0):g}; {report['dtype']}; {report['threads']} threads; "
        f"linear kernel {report.get('linear_kernel', 'aten')}; torch {report['torch']}; "
        f"model {report['model']!r}",
        f"{'mode':<22}{'ms/block':>10}{'min':>8}{'decode':>8}{'GFLOP':>9}{'speed-up':>10}{'FLOP ratio':>12}{'efficiency':>12}{'RTF':>8}{'KV MB':>8}",
    ]
    for r in report["results"]:
        ratios = (f"{r['speedup_vs_naive']:>9.2f}x{r['flop_ratio_vs_naive']:>11.2f}x{r['efficiency']:>11.0%}"
                  if r["speedup_vs_naive"] else f"{'-':>10}{'-':>12}{'-':>12}")
        lines.append(
            f"{r['mode']:<22}{r['block_ms']:>10.1f}{r['block_ms_min']:>8.1f}{r['decode_ms']:>8.1f}{r['gflops']:>9.2f}{ratios}"
            f"{r['real_time_factor']:>8.3f}{r['cache_bytes'] / 2**20:>8.2f}"
        )
    lines.append(f"first audio: {report['first_audio_ms']:.0f} ms from a new LiveSession to its first block (block_causal, model loaded)")
    m = report.get("matmul_ceiling")
    if m:
        lines.append(
            f"matmul ceiling: one step's linear layers run at {m['cached_gflops']:.0f} GFLOP/s with {m['cached_rows']} rows (cached step) "
            f"and {m['naive_gflops']:.0f} GFLOP/s with {m['naive_rows']} rows (naive step): the best efficiency the matmuls allow is {m['ceiling']:.0%}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lmdm bench", description=__doc__.splitlines()[0])
    p.add_argument("--config", default="small", choices=["tiny", "small"], help="model size preset (random weights)")
    p.add_argument("--model", help="bench a trained model instead: 'default' (bundled) or a checkpoint directory")
    p.add_argument("--modes", nargs="*", choices=[m[0] for m in MODES], help="which modes (default: all)")
    p.add_argument("--blocks", type=int, default=10, help="blocks timed per mode (median reported)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--sampler", default="pingpong", choices=["euler", "pingpong"])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the matmuls (fp32 elsewhere)")
    p.add_argument("--cfg", type=float, default=1.0, help="classifier-free guidance scale (1 = one pass; else a batch of 2)")
    p.add_argument("--ceiling", action="store_true", help="also measure the matmul efficiency ceiling (see matmul_ceiling)")
    p.add_argument("--linear", choices=list(linear.KERNELS), help="CPU float32 linear kernel (default: onednn where it works; see lmdm/model/linear.py)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    a = p.parse_args(argv)
    if a.linear:
        linear.set_kernel(a.linear)
    model = None
    if a.model:
        from lmdm.cli import resolve_model

        model = resolve_model(a.model)
    config = getattr(ModelConfig, a.config)()
    report = run(config, model=model, modes=a.modes, blocks=a.blocks, warmup=a.warmup, steps=a.steps, sampler=a.sampler, threads=a.threads, bf16=a.bf16,
                 cfg=a.cfg, ceiling=a.ceiling)
    print(json.dumps(report, indent=2) if a.json else format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
