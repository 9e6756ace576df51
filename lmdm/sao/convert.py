"""`lmdm convert SRC --out DIR`: an SAO model directory -> a self-contained lmdm checkpoint directory.

    DIR/config.json        lmdm-checkpoint: our ModelConfig, codec {"kind": "oobleck", "path": "."},
                           "sao": {text settings, seconds_total, source, objective, t5_path}
    DIR/model.safetensors  dit.* (keys renamed, to_qkv still fused), text.* (the seconds embedder)
    DIR/codec.safetensors  the Oobleck VAE, weight norm folded

SRC is a stable-audio-tools directory (model_config.json + model.safetensors or model.ckpt), or
one of our SAO checkpoints (to re-write it, e.g. with --half). T5 is not copied: it is looked up at
the first prompt (--t5, else $LMDM_T5, else DIR/t5-base).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lmdm.checkpoint import CheckpointError, half_precision, read_config, resolve, save_model
from lmdm.model.lmdm import LMDM
from lmdm.sao.load import CODEC_WEIGHTS, build_dit, codec_reference, is_sao_directory, is_stable_audio_directory, load_converted, read_sao
from lmdm.tensorfile import save_tensors


def convert(src: str | Path, out: str | Path, *, half: bool = False, t5: str | Path | None = None,
            seconds_total: float | None = None) -> tuple[Path, LMDM, tuple[str, ...]]:
    """-> (the written directory, the model, the DiT keys that were new in SRC: zero-filled)."""
    src, out = Path(src), Path(out)
    if out.resolve() == src.resolve():
        raise CheckpointError(f"--out {out} is the source directory; choose another")
    fresh: tuple[str, ...] = ()
    if is_stable_audio_directory(src):
        parts = read_sao(src, t5=t5, seconds_total=seconds_total)
        model = LMDM(parts.config, build_dit(parts.config, parts.dit_state, parts.directory), parts.text, parts.codec,
                     name=parts.directory.name).eval()
        spec = parts.spec
        sao: dict[str, Any] = {"text": spec.text.to_dict(), "source": str(src.resolve()), "objective": spec.objective,
                               "postpend": spec.postpend, "input_add_dims": [list(p) for p in spec.input_add]}
        info: dict[str, Any] = {"stage": "lmdm" if spec.input_add else "base", "regime": spec.regime}
        fresh = parts.fresh
    elif is_sao_directory(src):
        model = load_converted(src, t5=t5, seconds_total=seconds_total)
        doc = read_config(resolve(src))
        sao, info = dict(doc.get("sao", {})), {"stage": doc.get("stage"), "regime": doc.get("regime")}
    else:
        raise CheckpointError(f"{src} is not a Stable Audio model directory (no model_config.json) nor an lmdm SAO checkpoint")
    sao["seconds_total"] = model.text.seconds_total
    if t5 is not None:
        sao["t5_path"] = str(Path(t5).resolve())
    directory = save_model(model, out, codec=codec_reference(model.codec, "."), half=half, sao=sao, **info)
    tensors = {k: v.detach().float().cpu() for k, v in model.codec.state_dict().items()}
    save_tensors(directory / CODEC_WEIGHTS, half_precision(tensors) if half else tensors, metadata={"kind": "oobleck"})
    return directory, model, fresh


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lmdm convert", description="Convert a Stable Audio Open (Small) model directory to an lmdm checkpoint directory.")
    p.add_argument("src", help="a stable-audio-tools model directory (model_config.json + model.safetensors / model.ckpt)")
    p.add_argument("--out", required=True, help="the lmdm checkpoint directory to write")
    p.add_argument("--half", action="store_true", help="store weight matrices as float16 (half the size; loaded as float32)")
    p.add_argument("--t5", help="the local T5 directory to record (default at load: $LMDM_T5, else DIR/t5-base)")
    p.add_argument("--seconds-total", type=float, default=None, help="the seconds_total paired with every prompt (default 12)")
    a = p.parse_args(argv)
    try:
        directory, model, fresh = convert(a.src, a.out, half=a.half, t5=a.t5, seconds_total=a.seconds_total)
    except (CheckpointError, FileNotFoundError) as e:
        raise SystemExit(f"lmdm convert: {e}") from None
    c = model.config
    vae = sum(t.numel() for t in model.codec.state_dict().values())
    print(f"wrote {directory}: {model.parameters / 1e6:.1f}M DiT parameters (width {c.width} x depth {c.depth}), {vae / 1e6:.1f}M VAE, "
          f"{c.sample_rate} Hz x {c.channels} ch, {c.frame_rate:.4g} frames/s, RoPE base {c.rope_base:g}")
    if fresh:
        print(f"note: {', '.join(fresh)} is new (zeros): this is SAO itself, a starting point for `lmdm train lmdm`, not a live model yet")
    return 0
