"""How much does the prompt move a live model's prediction? A check of the text path's strength.

    python -m lmdm.eval.prompt_sensitivity --model runs/default-lmdm --latents runs/latents

On held-out windows (context C + one block B) of a latents directory, the target block is noised
to t, and the model predicts v under the window's own caption and under the null prompt, with the
real context and with it zeroed. It prints the mean of ||v(caption) - v(null)|| / ||v(null)|| per t:
the share of the prediction the prompt decides. Guidance (CFG) scales exactly this difference,
so a model whose prompt moves little gains little from CFG.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from lmdm.conditioning.text import null_conditioning
from lmdm.sampling import noised
from lmdm.stream import BlockStream
from lmdm.train.latents import LatentSet

TIMES = (0.3, 0.6, 0.9)


def relative_change(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b|| (0 when both are zero)."""
    norm = float(b.norm())
    return float((a - b).norm()) / norm if norm > 0 else 0.0


def prompt_sensitivity(model, latents: str, *, windows: int = 32, times=TIMES, split: str = "test", seed: int = 0) -> dict:
    """{t: {"context": mean relative change, "no_context": ...}} over `windows` held-out windows."""
    cfg = model.config
    C, B = cfg.context_frames, cfg.block_frames
    data = LatentSet(latents, split)
    z, captions, _ = data.windows(windows, C + B, np.random.default_rng(seed))
    null = null_conditioning(cfg.cond_dim, cfg.cond_tokens)
    g = torch.Generator().manual_seed(seed)
    conds = [model.encode_prompt(caption) for caption in captions]
    result: dict = {}
    for t in times:
        rows: dict[str, list[float]] = {"context": [], "no_context": []}
        for i, cond in enumerate(conds):
            x = noised(z[i : i + 1, :, C:], torch.randn(1, cfg.latent_dim, B, generator=g), torch.tensor(t))
            for name, context in (("context", z[i : i + 1, :, :C]), ("no_context", torch.zeros(1, cfg.latent_dim, C))):
                v = []
                for c in (cond, null):
                    stream = BlockStream(model, "block_causal", use_cache=False)
                    stream.start_from(context)
                    with torch.no_grad():
                        v.append(stream.denoiser(c)(x, t, 0))
                rows[name].append(relative_change(v[0], v[1]))
        result[str(t)] = {k: float(np.mean(r)) for k, r in rows.items()}
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lmdm.eval.prompt_sensitivity", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a live model's checkpoint or run directory")
    p.add_argument("--latents", required=True, help="a latents directory encoded with the model's codec")
    p.add_argument("--windows", type=int, default=32)
    p.add_argument("--split", default="test")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    import lmdm

    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        r = prompt_sensitivity(lmdm.load_model(a.model), a.latents, windows=a.windows, split=a.split)
    except (ValueError, FileNotFoundError) as e:
        print(f"prompt_sensitivity: {e}", file=sys.stderr)
        return 2
    print(json.dumps(r, indent=2) if a.json else "\n".join(
        f"t {t}: the prompt moves v by {v['context']:.3f} with the context, {v['no_context']:.3f} without" for t, v in r.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
