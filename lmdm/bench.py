"""`python -m lmdm.bench` (or `lmdm bench`): how much the KV cache saves, measured.

For one model config, runs each generation mode on a stream in its steady state (the history
is primed with enough random latents that every mode does its full per-block work) and prints
the median wall time per block, the forward FLOPs of one block (counted by
torch.utils.flop_counter, not estimated), speed-up and FLOP ratio against `naive`, the
real-time factor (generation + decode) and the KV-cache bytes.

`--device cuda` (and `--dtype`) runs the DiT, the cache, the sampler and the codec on that torch
device (lmdm.model.placement; bfloat16 weights on CUDA by default), timing each block to the
device's completion; `--config sao-small` benches Stable Audio Open Small's shapes with random
weights (a 341M-parameter DiT and the Oobleck VAE, lmdm.eval.sao_bench).

`--load N` runs it all with N CPU-bound processes (spinning Python loops) started by the bench
itself and stopped at the end: the figure for a busy machine. `--play SET --seconds S` plays a
set live on the default audio device (e.g. the JACK dummy server) instead, and reports the
session's real-time factor, the engine's underruns and PortAudio's output underflows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import attrs
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from lmdm.conditioning.text import null_conditioning
from lmdm.model import linear
from lmdm.model.config import ModelConfig
from lmdm.model.lmdm import LMDM, build_model
from lmdm.model.placement import HostCodec, model_placement, place, placement
from lmdm.stream import BlockStream
from lmdm.threads import add_threads_argument, torch_threads

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
    block_ms_max: float
    decode_ms: float  # median decode time per block
    gflops: float  # forward FLOPs per block, counted
    real_time_factor: float  # (generation + decode) / block duration
    cache_bytes: int
    speedup_vs_naive: float = 0.0
    flop_ratio_vs_naive: float = 0.0
    efficiency: float = 0.0  # speed-up / FLOP ratio: 1.0 means time fell exactly as FLOPs did


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a timer must not stop before the work does)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


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
    g = torch.Generator().manual_seed(0)  # on the CPU, as LiveSession's: the same noise on every device
    decoder = HostCodec(model.codec).stream_decoder()  # as LiveSession's: the audio comes back to the host
    device = stream.device

    def generate() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return stream.generate(cond, steps=steps, sampler=sampler, cfg=cfg, uncond=null, generator=g).float()

    def one_block() -> tuple[float, float]:
        t0 = time.perf_counter()
        x = generate()
        synchronize(device)
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
        block_ms=statistics.median(gen), block_ms_min=min(gen), block_ms_max=max(gen), decode_ms=statistics.median(dec),
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
        cfg: float = 1.0, ceiling: bool = False, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None) -> dict[str, Any]:
    """Bench a preset `config` with random weights, or a given (trained) `model`, on `threads`
    torch threads (None: torch's setting), on `device` in `dtype` (lmdm.model.placement; default:
    where the model is; the model is moved there in place)."""
    with torch_threads(threads):
        return _run(config, model=model, modes=modes, blocks=blocks, warmup=warmup, steps=steps, sampler=sampler, seed=seed,
                    prompt=prompt, bf16=bf16, cfg=cfg, ceiling=ceiling, device=device, dtype=dtype)


def _run(config: ModelConfig | None, *, model: LMDM | None, modes: list[str] | None, blocks: int, warmup: int, steps: int,
         sampler: str, seed: int, prompt: str, bf16: bool, cfg: float, ceiling: bool, device, dtype) -> dict[str, Any]:
    if model is None:
        if config is None:
            raise ValueError("give a config or a model")
        model = build_model(config, seed=seed)
    if device is not None or dtype is not None:
        place(model, placement(model_placement(model).device if device is None else device, dtype))
    where = model_placement(model)
    if bf16 and where.device.type != "cpu":
        raise ValueError("--bf16 is CPU autocast; on another device give --dtype bf16 (weights stored in bfloat16)")
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
        "dtype": "bf16 autocast" if bf16 else str(where.dtype).removeprefix("torch."),
        "device": str(where.device) + (f" ({torch.cuda.get_device_name(where.device)})" if where.device.type == "cuda" else ""),
        "cfg": cfg,
        "matmul_ceiling": matmul_ceiling(model, 1 if cfg == 1.0 else 2) if ceiling and not bf16 and where == placement() else None,
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
        f"{report['steps']} {report['sampler']} steps; CFG {report.get('cfg', 1.0):g}; {report['dtype']} on {report.get('device', 'cpu')}; "
        f"{report['threads']} threads; "
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
    lines += noisy(report)
    m = report.get("matmul_ceiling")
    if m:
        lines.append(
            f"matmul ceiling: one step's linear layers run at {m['cached_gflops']:.0f} GFLOP/s with {m['cached_rows']} rows (cached step) "
            f"and {m['naive_gflops']:.0f} GFLOP/s with {m['naive_rows']} rows (naive step): the best efficiency the matmuls allow is {m['ceiling']:.0%}"
        )
    return "\n".join(lines)


NOISY_SPREAD = 0.25  # the slowest timed block this far above the median: the timings are not to be trusted


def noisy(report: dict[str, Any]) -> list[str]:
    """Warning lines when the timings are noisy: blocks of one mode that spread by more than
    ``NOISY_SPREAD`` of their median, or a mode with fewer FLOPs than naive (a cached one) more
    efficient than its FLOPs allow (>100 %). A mode with more FLOPs than naive (an uncached
    block_causal over the long history) may well be: its larger matmuls run faster per FLOP."""
    spread = {r["mode"]: (r.get("block_ms_max", r["block_ms"]) - r["block_ms_min"]) / r["block_ms"] for r in report["results"] if r["block_ms"] > 0}
    wide = {mode: x for mode, x in spread.items() if x > NOISY_SPREAD}
    impossible = [r["mode"] for r in report["results"] if r["efficiency"] > 1.05 and r.get("flop_ratio_vs_naive", 0.0) > 1.0]
    if not wide and not impossible:
        return []
    why = [f"block times spread {max(wide.values()):.0%} of the median in {', '.join(wide)}"] if wide else []
    why += [f"efficiency over 100 % in {', '.join(impossible)} (faster than its FLOPs allow)"] if impossible else []
    return [f"warning: the timings are noisy ({'; '.join(why)}): is another process busy? Rerun on an idle machine, or with more --blocks"]


# --- a busy machine, and live play ----------------------------------------------------------------

HOG = "while True: pass"  # one CPU-bound process: a spinning Python loop


@contextlib.contextmanager
def cpu_load(processes: int) -> Iterator[list[subprocess.Popen]]:
    """``processes`` CPU-bound processes spinning for the duration of the block, stopped (and
    reaped) however it ends."""
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(processes)]
    try:
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()


def play_set(model: LMDM, set_file: Path, seconds: float, *, threads: int, device: Any = None, ahead: float = 1.0) -> dict[str, Any]:
    """Play ``set_file`` live (the audio engine on ``device``) for ``seconds``, as `lmdm live
    --no-repl` does, and report the session's real-time factor and the engine's dropouts."""
    from lmdm.audio import AudioEngine, EngineConfig
    from lmdm.session import LiveSession
    from lmdm_dsl import Interpreter

    session = LiveSession(model, threads=threads)
    interpreter = Interpreter(session)
    errors = [line for line in interpreter.run(set_file.read_text(encoding="utf-8"), tag=str(set_file)) if line.startswith("error")]
    config = EngineConfig(model_rate=session.sample_rate, channels=session.channels, device=device,
                          ahead_blocks=max(1.0, ahead / session.block_seconds))
    engine = AudioEngine(session.next_block, config)
    try:
        with engine:
            time.sleep(seconds)
    finally:
        interpreter.close()
    stats, s = engine.stats(), session.stats
    return {
        "set": str(set_file), "seconds": seconds, "threads": threads, "blocks": s.blocks,
        "real_time_factor": s.real_time_factor, "underruns": stats.underruns,
        "output_underflows": stats.output_underflows, "other_flags": stats.flags.others(),
        "producer_errors": stats.producer_errors, "device_losses": stats.device_losses, "set_errors": errors,
    }


def format_play(report: dict[str, Any], load: int) -> str:
    busy = f"with {load} CPU-bound process{'es' if load != 1 else ''} running" if load else "on an idle machine"
    line = (f"played {report['set']} for {report['seconds']:g} s {busy}, {report['threads']} thread(s): "
            f"{report['blocks']} blocks, real-time factor {report['real_time_factor']:.3f}, "
            f"{report['underruns']} underruns, {report['output_underflows']} output underflows")
    extra = [f"other PortAudio flags: {report['other_flags']}"] if report["other_flags"] else []
    extra += [f"{report['producer_errors']} producer errors"] if report["producer_errors"] else []
    extra += [f"device lost {report['device_losses']} times"] if report["device_losses"] else []
    extra += report["set_errors"]
    return line + ("".join(f"\n  {e}" for e in extra))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lmdm bench", description=__doc__.splitlines()[0])
    p.add_argument("--config", choices=["tiny", "small", "sao-small"],
                   help="bench a model size preset with random weights instead of --model (sao-small: Stable Audio Open Small's "
                        "341M-parameter DiT and its Oobleck VAE)")
    p.add_argument("--model", default="default", help="the model: 'default' (the bundled one, the default) or a checkpoint directory")
    p.add_argument("--modes", nargs="*", choices=[m[0] for m in MODES], help="which modes (default: all)")
    p.add_argument("--blocks", type=int, default=6, help="blocks timed per mode (median reported; default 6)")
    p.add_argument("--warmup", type=int, default=1, help="blocks run before timing (default 1)")
    p.add_argument("--steps", type=int, default=8, help="sampler steps (default 8)")
    p.add_argument("--sampler", default="pingpong", choices=["euler", "pingpong"], help="(default pingpong)")
    add_threads_argument(p)
    p.add_argument("--load", type=int, default=0, metavar="N",
                   help="run with N CPU-bound processes spinning (started and stopped by the bench): a busy machine")
    p.add_argument("--play", type=Path, metavar="SET",
                   help="play this set live on the default audio device for --seconds instead (needs --model; e.g. the JACK dummy server)")
    p.add_argument("--seconds", type=float, default=60.0, help="with --play: how long (default 60)")
    p.add_argument("--bf16", action="store_true", help="CPU only: bfloat16 autocast for the matmuls (fp32 elsewhere)")
    p.add_argument("--device", help="torch device for the model: cpu (default), cuda, cuda:N, mps")
    p.add_argument("--dtype", help="the DiT's weights and activations: float32, bfloat16 or float16 (default: bfloat16 on cuda, else float32)")
    p.add_argument("--cfg", type=float, default=1.0, help="classifier-free guidance scale (1 = one pass; else a batch of 2)")
    p.add_argument("--ceiling", action="store_true", help="also measure the matmul efficiency ceiling (see matmul_ceiling)")
    p.add_argument("--linear", choices=list(linear.KERNELS), help="CPU float32 linear kernel (default: onednn where it works; see lmdm/model/linear.py)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    a = p.parse_args(argv)
    if not 0 <= a.load <= 64:
        p.error(f"--load must be a number of processes from 0 to 64, got {a.load}")
    if a.play is not None and not (math.isfinite(a.seconds) and 0 < a.seconds <= 3600):
        p.error(f"--seconds must be from 0 to 3600, got {a.seconds:g}")
    if a.play is not None and not a.play.is_file():
        p.error(f"no set file {a.play}")
    if a.linear:
        linear.set_kernel(a.linear)
    try:
        where = placement(a.device, a.dtype)
    except ValueError as e:
        p.error(str(e))
    if a.bf16 and where.device.type != "cpu":
        p.error("--bf16 is CPU autocast; on another device give --dtype bf16 (weights stored in bfloat16)")
    if a.config == "sao-small":
        from lmdm.sao.shapes import random_sao_small

        model, config = random_sao_small(), None
    elif a.config is not None:  # a random preset
        model, config = None, getattr(ModelConfig, a.config)()
    else:
        from lmdm.render import resolve_model

        model, config = resolve_model(a.model), None
    if a.play is not None:
        model = place(model or build_model(config, seed=0), where)
        with cpu_load(a.load):
            report = play_set(model, a.play, a.seconds, threads=a.threads)
        report["load"] = a.load
        print(json.dumps(report, indent=2) if a.json else format_play(report, a.load))
        return 0
    with cpu_load(a.load):
        report = run(config, model=model, modes=a.modes, blocks=a.blocks, warmup=a.warmup, steps=a.steps, sampler=a.sampler, threads=a.threads,
                     bf16=a.bf16, cfg=a.cfg, ceiling=a.ceiling, device=where.device, dtype=where.dtype)
    report["load"] = a.load
    text = format_table(report)
    if a.load:
        text += f"\nunder load: {a.load} CPU-bound process{'es' if a.load != 1 else ''} spinning during the whole run"
    print(json.dumps(report, indent=2) if a.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
