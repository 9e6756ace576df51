"""`python -m lmdm.eval.sao_bench`: the full-size SAO-Small architecture, random weights, timed on this machine.

Runs `lmdm.bench.run(model=...)` (naive vs block_causal with the KV cache, FLOPs counted) on an
LMDM with SAO-Small's shapes (1024 x 16 DiT, 64-d latents at 44.1 kHz / 2048, 48-frame blocks,
4 blocks of context), then times the Oobleck VAE's streaming decode of one block. T5 is replaced
by random tokens of its shape (64 x 768): the prompt is encoded once per stream, so it does not
enter the per-block time. Nothing here needs the real weights.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from lmdm.bench import count_flops, format_table, run
from lmdm.codec.oobleck import OobleckCodec
from lmdm.codec.placeholder import PlaceholderCodec
from lmdm.model.placement import HostCodec, placement
from lmdm.sao.shapes import SAO_SMALL, random_sao_small

__all__ = ["SAO_SMALL", "decode_block", "main", "random_sao_small"]

@torch.inference_mode()
def decode_block(codec: OobleckCodec, frames: int = 48, blocks: int = 3, bf16: bool = False) -> dict[str, float]:
    """Median ms of one streaming push of `frames` latents (in steady state) on the codec's device,
    the audio brought back to the host, and its counted GFLOP."""
    decoder = HostCodec(codec).stream_decoder()
    z = torch.randn(1, codec.latent_dim, frames)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        decoder.push(z)  # the first push has no left context yet
        with count_flops() as counter:
            decoder.push(z)
        times = []
        for _ in range(blocks):
            t0 = time.perf_counter()
            decoder.push(z)
            times.append((time.perf_counter() - t0) * 1000)
    return {"decode_ms": statistics.median(times), "decode_gflops": counter.get_total_flops() / 1e9,
            "lookahead_ms": codec.decode_right * codec.hop / codec.sample_rate * 1000}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lmdm.eval.sao_bench", description=__doc__.splitlines()[0])
    p.add_argument("--blocks", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bf16", action="store_true", help="CPU bfloat16 autocast")
    p.add_argument("--device", help="torch device: cpu (default), cuda, cuda:N, mps")
    p.add_argument("--dtype", help="the DiT's dtype: float32, bfloat16, float16 (default: bfloat16 on cuda, else float32)")
    p.add_argument("--modes", nargs="*", default=["naive", "block_causal"])
    p.add_argument("--no-decode", action="store_true", help="skip timing the VAE")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    # the DiT with the (cheap) placeholder codec, so the modes' runs do not pay the VAE; the VAE on its own
    try:
        where = placement(a.device, a.dtype)
    except ValueError as e:
        p.error(str(e))
    model = random_sao_small(codec=PlaceholderCodec(SAO_SMALL.sample_rate, SAO_SMALL.hop, SAO_SMALL.latent_dim, SAO_SMALL.channels))
    report = run(model=model, modes=a.modes, blocks=a.blocks, warmup=a.warmup, threads=a.threads, bf16=a.bf16, device=where.device, dtype=where.dtype)
    if not a.no_decode:
        report["oobleck"] = decode_block(OobleckCodec().eval().to(where.device), SAO_SMALL.block_frames, a.blocks, a.bf16)
    print(json.dumps(report, indent=2) if a.json else format_table(report) + (f"\noobleck: {report['oobleck']}" if "oobleck" in report else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
