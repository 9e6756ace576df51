"""Stage 1 of the paper from SAO-Small weights: encode a corpus with the SAO VAE, then `lmdm train lmdm`.

    python -m lmdm.sao.train --corpus data/corpus-44k --sao models/sao-small --out runs/sao-latents
    lmdm train lmdm --recipe recipes/sao_small_lmdm.toml        # train.init = the SAO directory

The first line is `lmdm train encode --codec models/sao-small` (lmdm/train/latents.py), which
writes an "oobleck" codec reference pointing at the SAO directory. `init_from_sao` is what the
training loop calls when `train.init` is an SAO directory: the DiT, the seconds embedder and the
VAE come from the checkpoint, the T5 prompt encoder from its local directory (frozen, as in SAO),
and `to_input_add` (new in LMDM) gets PyTorch's default Linear init, as in the paper's stage 1.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, Callable

import torch

from lmdm.model.config import ModelConfig
from lmdm.model.dit import DiT
from lmdm.model.lmdm import LMDM
from lmdm.sao.keys import INPUT_ADD
from lmdm.sao.load import OOBLECK_KIND, assign_checked, is_stable_audio_directory, load_converted, read_sao

# ModelConfig fields the weights depend on: a recipe may change the stream geometry and the
# additive inputs, not these
WEIGHT_FIELDS = ("latent_dim", "sample_rate", "channels", "frame_rate", "width", "depth", "heads", "rotary_dims",
                 "rope_base", "mlp_ratio", "timestep_features", "cond_dim", "cond_tokens")
def init_from_sao(path: str | Path, latents_meta: dict[str, Any], seed: int, configure: Callable[[ModelConfig], ModelConfig]) -> LMDM:
    """The model `lmdm train lmdm` starts from when train.init is an SAO directory (docs/sao.md).

    `configure(base)`: the run's ModelConfig from the checkpoint's (the loop's recipe overrides)."""
    reference = latents_meta.get("codec")
    if not (isinstance(reference, dict) and reference.get("kind") == OOBLECK_KIND):
        raise ValueError(f"train.init {path} is an SAO model, but the latents were encoded with {reference!r}: "
                         "encode the corpus with its VAE (python -m lmdm.sao.train --corpus ... --sao ... --out ...)")
    if is_stable_audio_directory(path):
        parts = read_sao(path)
        base, state, text, codec, fresh = parts.config, parts.dit_state, parts.text, parts.codec, set(parts.fresh)
    else:  # one of our SAO checkpoints, e.g. an earlier fine-tune
        model = load_converted(path)
        base, text, codec, fresh = model.config, model.text, model.codec, set()
        state = {k: v.detach() for k, v in model.dit.state_dict().items()}
    config = configure(base)
    changed = [f"{k} {getattr(base, k)!r} -> {getattr(config, k)!r}" for k in WEIGHT_FIELDS if getattr(base, k) != getattr(config, k)]
    if changed:
        raise ValueError(f"the recipe changes what the SAO weights fix: {', '.join(changed)}; only block_frames, context_blocks and extra_add_inputs may change")
    with torch.device("meta"):
        dit = DiT(config)
    target = dit.state_dict()[INPUT_ADD]
    if INPUT_ADD in fresh or state[INPUT_ADD].shape != target.shape:  # new: nn.Linear's default init, seeded
        bound = 1.0 / math.sqrt(target.shape[1])
        g = torch.Generator().manual_seed(seed)
        state = {**state, INPUT_ADD: torch.empty(tuple(target.shape)).uniform_(-bound, bound, generator=g)}
    assign_checked(dit, state, path)
    return LMDM(config, dit, text, codec, name="sao-init")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lmdm.sao.train", description="Encode a corpus with the SAO VAE for `lmdm train lmdm` (docs/sao.md).")
    p.add_argument("--corpus", required=True, help="made with: lmdm corpus make --sample-rate 44100 --frame-rate 21.533203125 ...")
    p.add_argument("--sao", required=True, help="the SAO model directory (model_config.json + model.safetensors / model.ckpt)")
    p.add_argument("--out", required=True, help="the latents directory (re-running resumes)")
    p.add_argument("--split", default="all", choices=["train", "valid", "test", "all"])
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    from lmdm.train.latents import encode_corpus

    encode_corpus(a.corpus, a.sao, a.out, split=a.split, device=a.device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
