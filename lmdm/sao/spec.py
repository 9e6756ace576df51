"""stable-audio-tools' `model_config.json` -> what lmdm needs to rebuild the model (`SaoSpec`).

Only the architecture of Stable Audio Open Small and of its LMDM fine-tunes is accepted: a `dit`
diffusion model (continuous transformer, q/k LayerNorm, global token prepended or postpended),
T5 prompt tokens plus a `seconds_total` number as cross-attention input, `seconds_total` as the
global input, an Oobleck VAE. Anything else is refused with a message naming the setting, rather
than loaded into a model that would compute something different.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from lmdm.checkpoint import CheckpointError
from lmdm.codec.oobleck import OobleckConfig
from lmdm.model.config import ModelConfig

# the paper's stream geometry (48-frame chunks, 4 of context), used when the config does not say
DEFAULT_BLOCK_FRAMES = 48
DEFAULT_CONTEXT_BLOCKS = 4
TIMESTEP_FEATURES = 256  # FourierFeatures(1, 256) in SAO's DiT
MLP_RATIO = 4  # the continuous transformer's SwiGLU expansion
OBJECTIVES = ("rectified_flow", "rf_denoiser")  # both predict v = eps - x0, as our samplers expect
REGIMES = {"block-causal": "block_causal", "enc-dec": "encdec"}
# the DiT options we read, and the only values of the ones we merely check
DIT_FIXED: dict[str, Any] = {
    "patch_size": 1, "global_cond_type": "prepend", "timestep_cond_type": "global", "prepend_cond_dim": 0,
    "input_concat_dim": 0, "project_cond_tokens": True, "project_global_cond": True,
    "transformer_type": "continuous_transformer",
}
DIT_READ = {"io_channels", "embed_dim", "depth", "num_heads", "cond_token_dim", "global_cond_dim", "attn_kwargs", "postpend", "input_add_dims"}


@attrs.frozen
class TextSpec:
    """The conditioners: T5 prompt tokens (+ the seconds token) for cross-attention, seconds as the global input."""

    t5_name: str = "t5-base"
    max_length: int = 64
    seconds_min: float = 0.0
    seconds_max: float = 256.0

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TextSpec":
        known = {f.name for f in attrs.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@attrs.frozen
class SaoSpec:
    model: ModelConfig  # rope_base is a placeholder until the checkpoint's inv_freq is read
    codec: OobleckConfig
    text: TextSpec
    postpend: bool  # LMDM fine-tunes put the global token last, SAO first; both at RoPE position 0
    input_add: tuple[tuple[str, int], ...]  # SAO's input_add_dims; () for SAO itself
    regime: str | None  # the LMDM fine-tune's attention pattern (block_causal | encdec), None for SAO
    objective: str


def _get(d: Any, key: str, where: str, source: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise CheckpointError(f"{source}: {where}.{key} is missing")
    return d[key]


def _conditioning(cond: dict[str, Any], source: str) -> TextSpec:
    configs = {c.get("id"): c for c in _get(cond, "configs", "model.conditioning", source)}
    if set(configs) != {"prompt", "seconds_total"}:
        raise CheckpointError(f"{source}: conditioners {sorted(map(str, configs))} are not supported; lmdm reads SAO-Small's: prompt (t5) and seconds_total (number)")
    prompt, seconds = configs["prompt"], configs["seconds_total"]
    if prompt.get("type") != "t5" or seconds.get("type") != "number":
        raise CheckpointError(f"{source}: conditioner types {prompt.get('type')!r}/{seconds.get('type')!r} are not supported (t5 and number)")
    p, s = prompt.get("config", {}), seconds.get("config", {})
    if p.get("enable_grad") or p.get("project_out"):
        raise CheckpointError(f"{source}: a fine-tuned or projected T5 conditioner is not supported")
    return TextSpec(str(p.get("t5_model_name", "t5-base")), int(p.get("max_length", 128)),
                    float(s.get("min_val", 0.0)), float(s.get("max_val", 1.0)))


def _oobleck(pre: dict[str, Any], sample_rate: int, channels: int, source: str) -> OobleckConfig:
    if pre.get("type") != "autoencoder":
        raise CheckpointError(f"{source}: pretransform type {pre.get('type')!r} is not supported (autoencoder)")
    cfg = _get(pre, "config", "model.pretransform", source)
    enc, dec = _get(cfg, "encoder", "pretransform.config", source), _get(cfg, "decoder", "pretransform.config", source)
    if enc.get("type") != "oobleck" or dec.get("type") != "oobleck" or cfg.get("bottleneck", {}).get("type") != "vae":
        raise CheckpointError(f"{source}: only an Oobleck VAE pretransform is supported (encoder/decoder 'oobleck', bottleneck 'vae')")
    if float(pre.get("scale", 1.0)) != 1.0:
        raise CheckpointError(f"{source}: pretransform scale {pre.get('scale')} is not supported (1.0)")
    e, d = enc.get("config", {}), dec.get("config", {})
    shape = ("channels", "c_mults", "strides", "use_snake")
    if any(e.get(k) != d.get(k) for k in shape):
        raise CheckpointError(f"{source}: the Oobleck encoder and decoder differ in {[k for k in shape if e.get(k) != d.get(k)]}; lmdm builds symmetric ones")
    latent = int(d["latent_dim"])
    if int(e.get("latent_dim", 0)) != 2 * latent:
        raise CheckpointError(f"{source}: Oobleck encoder latent_dim {e.get('latent_dim')} is not 2 x the decoder's {latent} (mean and scale)")
    if int(e.get("in_channels", 2)) != channels or int(d.get("out_channels", 2)) != channels:
        raise CheckpointError(f"{source}: Oobleck in/out channels {e.get('in_channels')}/{d.get('out_channels')} differ from audio_channels {channels}")
    config = OobleckConfig(sample_rate, channels, int(d.get("channels", 128)), tuple(d.get("c_mults", (1, 2, 4, 8, 16))),
                           tuple(d.get("strides", (2, 4, 4, 8, 8))), latent, bool(d.get("use_snake", False)), bool(d.get("final_tanh", True)))
    ratio = cfg.get("downsampling_ratio")
    if ratio is not None and int(ratio) != config.hop:
        raise CheckpointError(f"{source}: downsampling_ratio {ratio} is not the product of the strides {config.hop}")
    return config


def _input_add(dims: list[Any], latent_dim: int, source: str) -> tuple[tuple[str, int], ...]:
    """SAO's input_add_dims -> our extra_add_inputs (after the context input, which SAO names inpaint_*)."""
    pairs = tuple((str(n), int(d)) for n, d in dims)
    if not pairs:
        return ()
    if pairs[:2] != (("inpaint_mask", 1), ("inpaint_masked_input", latent_dim)):
        raise CheckpointError(f"{source}: input_add_dims must start with inpaint_mask (1) and inpaint_masked_input ({latent_dim}), got {list(pairs)}")
    rest = pairs[2:]
    if rest and rest != (("accomp_mask", 1), ("accomp_input", latent_dim)):
        raise CheckpointError(f"{source}: input_add_dims {list(rest)} are not supported (only accomp_mask + accomp_input)")
    return (("accomp", 1 + latent_dim),) if rest else ()


def parse_model_config(doc: dict[str, Any], source: str) -> SaoSpec:
    """A stable-audio-tools model_config.json (parsed) -> SaoSpec. `source` names the file in errors."""
    if doc.get("model_type") != "diffusion_cond":
        raise CheckpointError(f"{source}: model_type {doc.get('model_type')!r} is not supported (diffusion_cond)")
    sample_rate, channels = int(_get(doc, "sample_rate", "config", source)), int(doc.get("audio_channels", 2))
    model = _get(doc, "model", "config", source)
    diffusion = _get(model, "diffusion", "model", source)
    if diffusion.get("type") != "dit":
        raise CheckpointError(f"{source}: diffusion type {diffusion.get('type')!r} is not supported (dit)")
    objective = str(diffusion.get("diffusion_objective", "v"))
    if objective not in OBJECTIVES:
        raise CheckpointError(f"{source}: diffusion_objective {objective!r} is not supported ({', '.join(OBJECTIVES)})")
    if diffusion.get("cross_attention_cond_ids") != ["prompt", "seconds_total"] or diffusion.get("global_cond_ids") != ["seconds_total"]:
        raise CheckpointError(f"{source}: cross_attention_cond_ids must be [prompt, seconds_total] and global_cond_ids [seconds_total], as in SAO-Small")
    if diffusion.get("input_concat_ids") or diffusion.get("prepend_cond_ids"):
        raise CheckpointError(f"{source}: input_concat_ids / prepend_cond_ids are not supported")
    dit = _get(diffusion, "config", "model.diffusion", source)
    unknown = sorted(set(dit) - DIT_READ - set(DIT_FIXED))
    if unknown:
        raise CheckpointError(f"{source}: DiT option(s) {', '.join(unknown)} are not supported by lmdm's DiT")
    wrong = [f"{k}={dit[k]!r} (lmdm: {v!r})" for k, v in DIT_FIXED.items() if k in dit and dit[k] != v]
    if wrong:
        raise CheckpointError(f"{source}: unsupported DiT setting(s): {', '.join(wrong)}")
    if dit.get("attn_kwargs", {}).get("qk_norm") != "ln" or set(dit.get("attn_kwargs", {})) - {"qk_norm"}:
        raise CheckpointError(f"{source}: DiT attn_kwargs must be {{\"qk_norm\": \"ln\"}} (q/k LayerNorm), got {dit.get('attn_kwargs')}")

    text = _conditioning(_get(model, "conditioning", "model", source), source)
    cond_dim = int(model["conditioning"].get("cond_dim", 768))
    token_dim, global_dim = int(_get(dit, "cond_token_dim", "diffusion.config", source)), int(_get(dit, "global_cond_dim", "diffusion.config", source))
    if not cond_dim == token_dim == global_dim:
        raise CheckpointError(f"{source}: cond_dim {cond_dim}, cond_token_dim {token_dim} and global_cond_dim {global_dim} must be equal")
    codec = _oobleck(_get(model, "pretransform", "model", source), sample_rate, channels, source)
    latent_dim, width, heads = int(dit["io_channels"]), int(dit["embed_dim"]), int(dit["num_heads"])
    if latent_dim != codec.latent_dim:
        raise CheckpointError(f"{source}: the DiT's io_channels {latent_dim} differ from the VAE's latent_dim {codec.latent_dim}")
    if width % heads:
        raise CheckpointError(f"{source}: embed_dim {width} is not divisible by num_heads {heads}")
    rotary = max(width // heads // 2, 32)  # RotaryEmbedding(max(dim_head // 2, 32)) in the continuous transformer
    if rotary > width // heads:
        raise CheckpointError(f"{source}: head dim {width // heads} is smaller than SAO's rotary dim {rotary}")

    masks = doc.get("training", {}).get("inpainting", {}).get("mask_kwargs", {})
    block = int(masks.get("block_causal_chunk_size", DEFAULT_BLOCK_FRAMES))
    context = int(masks.get("fixed_mask_size", block * DEFAULT_CONTEXT_BLOCKS))
    if context % block:
        raise CheckpointError(f"{source}: fixed_mask_size {context} is not a whole number of {block}-frame blocks")
    pattern = masks.get("context_router_attention_pattern")
    regime = REGIMES.get(pattern) if pattern else None
    if pattern and regime is None:
        raise CheckpointError(f"{source}: context_router_attention_pattern {pattern!r} is not supported ({', '.join(REGIMES)})")
    input_add = tuple((str(n), int(d)) for n, d in dit.get("input_add_dims", []))
    try:
        config = ModelConfig(
            latent_dim=latent_dim, frame_rate=sample_rate / codec.hop, sample_rate=sample_rate, channels=channels,
            width=width, depth=int(dit["depth"]), heads=heads, rotary_dims=rotary, rope_base=10000.0, mlp_ratio=MLP_RATIO,
            timestep_features=TIMESTEP_FEATURES, cond_dim=cond_dim, cond_tokens=text.max_length + 1,
            extra_add_inputs=_input_add(list(input_add), latent_dim, source), block_frames=block, context_blocks=context // block,
        )
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: {e}") from e
    return SaoSpec(config, codec, text, bool(dit.get("postpend", False)), input_add, regime, objective)


def rope_base(inv_freq: list[float] | Any, rotary_dims: int, source: str) -> float:
    """The base of a RoPE frequency table inv_freq[i] = base^(-2i / rotary_dims), checked entry by entry.

    SAO's table has base 1e4; the LMDM code's default is 1e6, but the table is a saved buffer, so a
    checkpoint always says which one it was trained with.
    """
    values = [float(v) for v in inv_freq]
    if len(values) != rotary_dims // 2 or len(values) < 2 or values[0] != 1.0:
        raise CheckpointError(f"{source}: rotary inv_freq has {len(values)} entries starting at {values[:1]}; expected {rotary_dims // 2} starting at 1")
    base = values[1] ** (-rotary_dims / 2)
    base = float(f"{base:.6g}")  # 9999.97 -> 10000: the table is stored in float32
    expected = [base ** (-2 * i / rotary_dims) for i in range(len(values))]
    if any(not math.isclose(v, e, rel_tol=1e-4) for v, e in zip(values, expected)):
        raise CheckpointError(f"{source}: rotary inv_freq is not a geometric RoPE table (base {base:g})")
    return base
