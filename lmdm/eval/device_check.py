"""`python -m lmdm.eval.device_check`: the stream on a torch device, checked against itself and the CPU.

Prints, as JSON:

- ``exactness``: for each dtype and regime, the largest gap between the cached stream and the
  uncached reference (full masked forwards) on the device, as a share of the stream's largest
  |latent|, on a model of the chosen size with random weights (`--size sao-small`: Stable Audio
  Open Small's 341M-parameter DiT; the history primed so every block does its full work);
- ``vs_cpu``: the bundled model's stream on the device (each dtype) against the same seed on the
  CPU in float32, block by block: how far reduced precision and other kernels move the music.

The tolerances the tests hold the CPU to are in tests/test_device.py; this prints the numbers a
GPU gives, for docs/performance.md and docs/sao.md.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

from lmdm.conditioning.text import null_conditioning
from lmdm.model.placement import model_placement, place, placement
from lmdm.stream import BlockStream


def _blocks(model: Any, regime: str, use_cache: bool, blocks: int, steps: int, cfg: float, seed: int, prime: int) -> torch.Tensor:
    stream = BlockStream(model, regime, use_cache, "fused")
    if prime:
        stream.prime(torch.randn(1, model.config.latent_dim, prime, generator=torch.Generator().manual_seed(seed + 1)))
    cond = model.encode_prompt("deep house with warm chords")
    null = null_conditioning(model.config.cond_dim, model.config.cond_tokens)
    g = torch.Generator().manual_seed(seed)
    return torch.cat([stream.generate(cond, steps=steps, cfg=cfg, uncond=null, generator=g).cpu() for _ in range(blocks)], dim=2)


def gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest difference as a share of the larger stream's largest |latent|."""
    return float((a - b).abs().max() / torch.maximum(a.abs().max(), b.abs().max()))


def exactness(model: Any, device: str, dtypes: list[str], blocks: int, steps: int, cfg: float) -> list[dict[str, Any]]:
    out = []
    for dtype in dtypes:
        place(model, placement(device, dtype))
        for regime in ("encdec", "block_causal"):
            prime = BlockStream(model, regime).keep if regime == "block_causal" else model.config.context_frames
            t0 = time.perf_counter()
            ref = _blocks(model, regime, False, blocks, steps, cfg, 0, prime)
            fast = _blocks(model, regime, True, blocks, steps, cfg, 0, prime)
            out.append({"dtype": dtype, "regime": regime, "blocks": blocks, "cached_vs_uncached": gap(ref, fast),
                        "finite": bool(torch.isfinite(fast).all()), "seconds": round(time.perf_counter() - t0, 2)})
    return out


def vs_cpu(model: Any, device: str, dtypes: list[str], blocks: int, steps: int, cfg: float) -> list[dict[str, Any]]:
    place(model, placement("cpu", "float32"))
    cpu = _blocks(model, "block_causal", True, blocks, steps, cfg, 0, 0)
    B = model.config.block_frames
    out = []
    for dtype in dtypes:
        place(model, placement(device, dtype))
        there = _blocks(model, "block_causal", True, blocks, steps, cfg, 0, 0)
        per_block = [round(gap(cpu[:, :, i * B:(i + 1) * B], there[:, :, i * B:(i + 1) * B]), 5) for i in range(blocks)]
        out.append({"dtype": dtype, "per_block_gap": per_block, "rms_ratio": float(there.pow(2).mean().sqrt() / cpu.pow(2).mean().sqrt())})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lmdm.eval.device_check", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--size", choices=["sao-small", "tiny"], default="sao-small", help="the random model of the exactness check")
    p.add_argument("--dtypes", nargs="*", default=["float32", "bfloat16", "float16"])
    p.add_argument("--blocks", type=int, default=3)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--cfg", type=float, default=1.0)
    p.add_argument("--model", default="default", help="the trained model of the CPU comparison ('' to skip it)")
    p.add_argument("--cpu-blocks", type=int, default=8)
    a = p.parse_args(argv)
    if a.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 means float32 here
        torch.backends.cudnn.allow_tf32 = False
    if a.size == "sao-small":
        from lmdm.sao.shapes import random_sao_small

        random = random_sao_small()
    else:
        from lmdm.model.config import ModelConfig
        from lmdm.model.lmdm import build_model

        random = build_model(ModelConfig.tiny(), seed=0)
    report: dict[str, Any] = {"device": a.device, "torch": torch.__version__, "size": a.size, "steps": a.steps, "cfg": a.cfg,
                              "exactness": exactness(random, a.device, a.dtypes, a.blocks, a.steps, a.cfg)}
    if a.device.startswith("cuda"):
        report["gpu"] = torch.cuda.get_device_name()
    if a.model:
        from lmdm.render import resolve_model

        model = resolve_model(a.model)
        report["vs_cpu"] = {"model": model.name, "runs": vs_cpu(model, a.device, a.dtypes, a.cpu_blocks, model.steps, model.guidance)}
        report["vs_cpu"]["placement_after"] = str(model_placement(model))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
