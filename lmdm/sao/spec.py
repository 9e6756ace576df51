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
import torch

from lmdm.checkpoint import CheckpointError
from lmdm.codec.oobleck import OobleckConfig
from lmdm.config_fields import check_parameters, meta_numel
from lmdm.model.config import ModelConfig
from lmdm.model.dit import DiT

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


_REQUIRED = object()
# the ranges of the numbers read (generous: SAO-Small is 1024 wide, 16 deep, T5 64 tokens, Oobleck 128 x (1 2 4 8 16))
OOBLECK_LIMITS: dict[str, tuple[float, float]] = {
    "sample_rate": (100, 384_000), "channels": (1, 16), "base_channels": (1, 4096), "c_mults": (1, 64),
    "strides": (2, 64), "latent_dim": (1, 4096),
}


def _get(d: Any, key: str, where: str, source: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise CheckpointError(f"{source}: {where}.{key} is missing")
    return d[key]


def _value(d: dict[str, Any], key: str, where: str, source: str, default: Any = _REQUIRED) -> Any:
    return _get(d, key, where, source) if default is _REQUIRED else d.get(key, default)


def _obj(d: dict[str, Any], key: str, where: str, source: str, default: Any = _REQUIRED) -> dict[str, Any]:
    """A JSON object field (default: required)."""
    value = _value(d, key, where, source, {} if default is None else default)
    if not isinstance(value, dict):
        raise CheckpointError(f"{source}: {where}.{key} must be an object, got {_short(value)}")
    return value


def _number(d: dict[str, Any], key: str, where: str, source: str, default: Any = _REQUIRED, *,
            whole: bool = True, lo: float = -math.inf, hi: float = math.inf) -> Any:
    """A number field in [lo, hi]; `whole`: an int (an integral float such as 64.0 is taken too)."""
    value = _value(d, key, where, source, default)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (not whole or float(value).is_integer()) and lo <= value <= hi
    if not ok:
        kind = "a whole number" if whole else "a number"
        span = f" from {lo:g} to {hi:g}" if math.isfinite(lo) and math.isfinite(hi) else f" >= {lo:g}" if math.isfinite(lo) else ""
        raise CheckpointError(f"{source}: {where}.{key} must be {kind}{span}, got {_short(value)}")
    return int(value) if whole else float(value)


def _text(d: dict[str, Any], key: str, where: str, source: str, default: Any = _REQUIRED) -> str:
    value = _value(d, key, where, source, default)
    if not isinstance(value, str):
        raise CheckpointError(f"{source}: {where}.{key} must be a string, got {_short(value)}")
    return value


def _flag(d: dict[str, Any], key: str, where: str, source: str, default: bool) -> bool:
    value = d.get(key, default)
    if not isinstance(value, bool):
        raise CheckpointError(f"{source}: {where}.{key} must be true or false, got {_short(value)}")
    return value


def _ints(d: dict[str, Any], key: str, where: str, source: str, default: Any, lo: int, hi: int) -> tuple[int, ...]:
    value = d.get(key, default)
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= 16 or any(
        isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi for v in value
    ):
        raise CheckpointError(f"{source}: {where}.{key} must be a list of 1 to 16 whole numbers from {lo} to {hi}, got {_short(value)}")
    return tuple(value)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    def from_dict(cls, d: Any, source: str = "config.json", where: str = "sao.text") -> "TextSpec":
        """Our checkpoints' "sao": {"text": ...}; unknown keys are ignored, known ones checked."""
        if not isinstance(d, dict):
            raise CheckpointError(f"{source}: {where} must be an object, got {_short(d)}")
        default = cls()
        return _text_spec(_text(d, "t5_name", where, source, default.t5_name), _number(d, "max_length", where, source, default.max_length, lo=1, hi=4095),
                          _number(d, "seconds_min", where, source, default.seconds_min, whole=False),
                          _number(d, "seconds_max", where, source, default.seconds_max, whole=False), source)


def _text_spec(name: str, max_length: int, seconds_min: float, seconds_max: float, source: str) -> TextSpec:
    if not name.strip() or len(name) > 200:
        raise CheckpointError(f"{source}: the T5 model name must be a non-empty name, got {_short(name)}")
    if not seconds_min < seconds_max:
        raise CheckpointError(f"{source}: the seconds_total range must have min_val < max_val, got {seconds_min:g} and {seconds_max:g}")
    return TextSpec(name, max_length, seconds_min, seconds_max)


@attrs.frozen
class SaoSpec:
    model: ModelConfig  # rope_base is a placeholder until the checkpoint's inv_freq is read
    codec: OobleckConfig
    text: TextSpec
    postpend: bool  # LMDM fine-tunes put the global token last, SAO first; both at RoPE position 0
    input_add: tuple[tuple[str, int], ...]  # SAO's input_add_dims; () for SAO itself
    regime: str | None  # the LMDM fine-tune's attention pattern (block_causal | encdec), None for SAO
    objective: str


def _conditioning(cond: dict[str, Any], source: str) -> TextSpec:
    listed = _get(cond, "configs", "model.conditioning", source)
    if not isinstance(listed, list) or not all(isinstance(c, dict) and isinstance(c.get("id"), str) for c in listed):
        raise CheckpointError(f"{source}: model.conditioning.configs must be a list of objects with an \"id\", got {_short(listed)}")
    configs = {c["id"]: c for c in listed}
    if set(configs) != {"prompt", "seconds_total"}:
        raise CheckpointError(f"{source}: conditioners {sorted(map(str, configs))} are not supported; lmdm reads SAO-Small's: prompt (t5) and seconds_total (number)")
    prompt, seconds = configs["prompt"], configs["seconds_total"]
    if prompt.get("type") != "t5" or seconds.get("type") != "number":
        raise CheckpointError(f"{source}: conditioner types {_short(prompt.get('type'))}/{_short(seconds.get('type'))} are not supported (t5 and number)")
    p, s = _obj(prompt, "config", "prompt", source, None), _obj(seconds, "config", "seconds_total", source, None)
    if p.get("enable_grad") or p.get("project_out"):
        raise CheckpointError(f"{source}: a fine-tuned or projected T5 conditioner is not supported")
    return _text_spec(_text(p, "t5_model_name", "prompt.config", source, "t5-base"), _number(p, "max_length", "prompt.config", source, 128, lo=1, hi=4095),
                      _number(s, "min_val", "seconds_total.config", source, 0.0, whole=False),
                      _number(s, "max_val", "seconds_total.config", source, 1.0, whole=False), source)


def _oobleck(pre: dict[str, Any], sample_rate: int, channels: int, source: str) -> OobleckConfig:
    if pre.get("type") != "autoencoder":
        raise CheckpointError(f"{source}: pretransform type {_short(pre.get('type'))} is not supported (autoencoder)")
    where = "model.pretransform.config"
    cfg = _obj(pre, "config", "model.pretransform", source)
    enc, dec = _obj(cfg, "encoder", where, source), _obj(cfg, "decoder", where, source)
    if enc.get("type") != "oobleck" or dec.get("type") != "oobleck" or _obj(cfg, "bottleneck", where, source, None).get("type") != "vae":
        raise CheckpointError(f"{source}: only an Oobleck VAE pretransform is supported (encoder/decoder 'oobleck', bottleneck 'vae')")
    if _number(pre, "scale", "model.pretransform", source, 1.0, whole=False) != 1.0:
        raise CheckpointError(f"{source}: pretransform scale {pre.get('scale')} is not supported (1.0)")
    e, d = _obj(enc, "config", f"{where}.encoder", source, None), _obj(dec, "config", f"{where}.decoder", source, None)
    shape = ("channels", "c_mults", "strides", "use_snake")
    if any(e.get(k) != d.get(k) for k in shape):
        raise CheckpointError(f"{source}: the Oobleck encoder and decoder differ in {[k for k in shape if e.get(k) != d.get(k)]}; lmdm builds symmetric ones")
    at = f"{where}.decoder.config"
    latent = _number(d, "latent_dim", at, source, lo=1, hi=OOBLECK_LIMITS["latent_dim"][1])
    if _number(e, "latent_dim", f"{where}.encoder.config", source, 0) != 2 * latent:
        raise CheckpointError(f"{source}: Oobleck encoder latent_dim {_short(e.get('latent_dim'))} is not 2 x the decoder's {latent} (mean and scale)")
    if _number(e, "in_channels", f"{where}.encoder.config", source, 2) != channels or _number(d, "out_channels", at, source, 2) != channels:
        raise CheckpointError(f"{source}: Oobleck in/out channels {e.get('in_channels')}/{d.get('out_channels')} differ from audio_channels {channels}")
    c_mults = _ints(d, "c_mults", at, source, [1, 2, 4, 8, 16], *map(int, OOBLECK_LIMITS["c_mults"]))
    strides = _ints(d, "strides", at, source, [2, 4, 4, 8, 8], *map(int, OOBLECK_LIMITS["strides"]))
    try:
        config = OobleckConfig(sample_rate, channels, _number(d, "channels", at, source, 128, lo=1, hi=OOBLECK_LIMITS["base_channels"][1]),
                               c_mults, strides, latent, _flag(d, "use_snake", at, source, False), _flag(d, "final_tanh", at, source, True))
    except ValueError as error:
        raise CheckpointError(f"{source}: {error}") from None
    ratio = cfg.get("downsampling_ratio")
    if ratio is not None and ratio != config.hop:
        raise CheckpointError(f"{source}: downsampling_ratio {_short(ratio)} is not the product of the strides {config.hop}")
    return config


def _input_add(dims: Any, latent_dim: int, source: str) -> tuple[tuple[str, int], ...]:
    """SAO's input_add_dims -> our extra_add_inputs (after the context input, which SAO names inpaint_*)."""
    ok = isinstance(dims, list) and all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and _is_whole(p[1]) for p in dims)
    if not ok:
        raise CheckpointError(f"{source}: input_add_dims must be a list of [name, size] pairs, got {_short(dims)}")
    pairs = tuple((n, int(d)) for n, d in dims)
    if not pairs:
        return ()
    if pairs[:2] != (("inpaint_mask", 1), ("inpaint_masked_input", latent_dim)):
        raise CheckpointError(f"{source}: input_add_dims must start with inpaint_mask (1) and inpaint_masked_input ({latent_dim}), got {_short(list(pairs), 200)}")
    rest = pairs[2:]
    if rest and rest != (("accomp_mask", 1), ("accomp_input", latent_dim)):
        raise CheckpointError(f"{source}: input_add_dims {_short(list(rest), 200)} are not supported (only accomp_mask + accomp_input)")
    return (("accomp", 1 + latent_dim),) if rest else ()


def _is_whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def parse_model_config(doc: Any, source: str) -> SaoSpec:
    """A stable-audio-tools model_config.json (parsed) -> SaoSpec. `source` names the file in errors.

    Every value read is checked for its type and range: anything else is a one-line CheckpointError.
    """
    if not isinstance(doc, dict):
        raise CheckpointError(f"{source}: a model_config.json must be a JSON object, got {_short(doc)}")
    if doc.get("model_type") != "diffusion_cond":
        raise CheckpointError(f"{source}: model_type {_short(doc.get('model_type'))} is not supported (diffusion_cond)")
    sample_rate = _number(doc, "sample_rate", "config", source, lo=100, hi=384_000)
    channels = _number(doc, "audio_channels", "config", source, 2, lo=1, hi=16)
    model = _obj(doc, "model", "config", source)
    diffusion = _obj(model, "diffusion", "model", source)
    if diffusion.get("type") != "dit":
        raise CheckpointError(f"{source}: diffusion type {_short(diffusion.get('type'))} is not supported (dit)")
    objective = diffusion.get("diffusion_objective", "v")
    if objective not in OBJECTIVES:
        raise CheckpointError(f"{source}: diffusion_objective {_short(objective)} is not supported ({', '.join(OBJECTIVES)})")
    if diffusion.get("cross_attention_cond_ids") != ["prompt", "seconds_total"] or diffusion.get("global_cond_ids") != ["seconds_total"]:
        raise CheckpointError(f"{source}: cross_attention_cond_ids must be [prompt, seconds_total] and global_cond_ids [seconds_total], as in SAO-Small")
    if diffusion.get("input_concat_ids") or diffusion.get("prepend_cond_ids"):
        raise CheckpointError(f"{source}: input_concat_ids / prepend_cond_ids are not supported")
    dit = _obj(diffusion, "config", "model.diffusion", source)
    unknown = sorted(set(dit) - DIT_READ - set(DIT_FIXED))
    if unknown:
        raise CheckpointError(f"{source}: DiT option(s) {_short(', '.join(unknown), 200)} are not supported by lmdm's DiT")
    wrong = [f"{k}={_short(dit[k])} (lmdm: {v!r})" for k, v in DIT_FIXED.items() if k in dit and dit[k] != v]
    if wrong:
        raise CheckpointError(f"{source}: unsupported DiT setting(s): {', '.join(wrong)}")
    attn = dit.get("attn_kwargs", {})
    if not isinstance(attn, dict) or attn.get("qk_norm") != "ln" or set(attn) - {"qk_norm"}:
        raise CheckpointError(f"{source}: DiT attn_kwargs must be {{\"qk_norm\": \"ln\"}} (q/k LayerNorm), got {_short(attn)}")

    here = "model.diffusion.config"
    conditioning = _obj(model, "conditioning", "model", source)
    text = _conditioning(conditioning, source)
    cond_dim = _number(conditioning, "cond_dim", "model.conditioning", source, 768, lo=1, hi=16384)
    token_dim, global_dim = (_number(dit, k, here, source, lo=1, hi=16384) for k in ("cond_token_dim", "global_cond_dim"))
    if not cond_dim == token_dim == global_dim:
        raise CheckpointError(f"{source}: cond_dim {cond_dim}, cond_token_dim {token_dim} and global_cond_dim {global_dim} must be equal")
    codec = _oobleck(_obj(model, "pretransform", "model", source), sample_rate, channels, source)
    latent_dim = _number(dit, "io_channels", here, source, lo=1, hi=4096)
    width, heads = _number(dit, "embed_dim", here, source, lo=1, hi=16384), _number(dit, "num_heads", here, source, lo=1, hi=1024)
    depth = _number(dit, "depth", here, source, lo=1, hi=256)
    if latent_dim != codec.latent_dim:
        raise CheckpointError(f"{source}: the DiT's io_channels {latent_dim} differ from the VAE's latent_dim {codec.latent_dim}")
    if width % heads:
        raise CheckpointError(f"{source}: embed_dim {width} is not divisible by num_heads {heads}")
    rotary = max(width // heads // 2, 32)  # RotaryEmbedding(max(dim_head // 2, 32)) in the continuous transformer
    if rotary > width // heads:
        raise CheckpointError(f"{source}: head dim {width // heads} is smaller than SAO's rotary dim {rotary}")

    at = "training.inpainting.mask_kwargs"
    masks = _obj(_obj(_obj(doc, "training", "config", source, None), "inpainting", "training", source, None), "mask_kwargs", "training.inpainting", source, None)
    block = _number(masks, "block_causal_chunk_size", at, source, DEFAULT_BLOCK_FRAMES, lo=1, hi=8192)
    context = _number(masks, "fixed_mask_size", at, source, block * DEFAULT_CONTEXT_BLOCKS, lo=block, hi=8192)
    if context % block:
        raise CheckpointError(f"{source}: fixed_mask_size {context} is not a whole number of {block}-frame blocks")
    pattern = masks.get("context_router_attention_pattern")
    regime = REGIMES.get(pattern) if isinstance(pattern, str) else None
    if pattern and regime is None:
        raise CheckpointError(f"{source}: context_router_attention_pattern {_short(pattern)} is not supported ({', '.join(REGIMES)})")
    input_add = _input_add(dit.get("input_add_dims", []), latent_dim, source)
    try:
        config = ModelConfig(
            latent_dim=latent_dim, frame_rate=sample_rate / codec.hop, sample_rate=sample_rate, channels=channels,
            width=width, depth=depth, heads=heads, rotary_dims=rotary, rope_base=10000.0, mlp_ratio=MLP_RATIO,
            timestep_features=TIMESTEP_FEATURES, cond_dim=cond_dim, cond_tokens=text.max_length + 1,
            extra_add_inputs=input_add, block_frames=block, context_blocks=context // block,
        )
        check_parameters(meta_numel(lambda: DiT(config)), "the DiT")
    except ValueError as e:
        raise CheckpointError(f"{source}: {e}") from e
    pairs = tuple((str(n), int(d)) for n, d in dit.get("input_add_dims", []))
    return SaoSpec(config, codec, text, _flag(dit, "postpend", here, source, False), pairs, regime, objective)


def rope_base(inv_freq: torch.Tensor | list[float], rotary_dims: int, source: str) -> float:
    """The base of a RoPE frequency table inv_freq[i] = base^(-2i / rotary_dims), checked entry by entry
    at the tensor's own precision (a list counts as float32; a float32 table whose every value is a
    float16 or bfloat16 one was stored at that precision before).

    SAO's table has base 1e4; the LMDM code's default is 1e6, but the table is a saved buffer, so a
    checkpoint always says which one it was trained with. A table stored in float16 or bfloat16 (as
    stable-audio-tools saves half-precision models) is rounded to 3 or 2 digits, so its base is
    fitted to all entries, the simplest round base that rounds to the same table is taken, and each
    entry must be that table's to within one step of the stored precision. (The model runs with
    the stored table, as stable-audio-tools does: the base only has to describe it.)
    """
    table = torch.as_tensor(inv_freq)
    dtype = table.dtype if table.is_floating_point() and table.dtype != torch.float64 else torch.float32
    values = table.double().flatten()
    if dtype == torch.float32:  # a half-precision table upcast since (every value exact in bfloat16, else float16) keeps its precision
        dtype = next((d for d in (torch.bfloat16, torch.float16) if torch.equal(values.to(d).double(), values)), dtype)
    if len(values) != rotary_dims // 2 or len(values) < 2 or values[0].item() != 1.0:
        raise CheckpointError(f"{source}: rotary inv_freq has {len(values)} entries starting at {values[:1].tolist()}; expected {rotary_dims // 2} starting at 1")
    if not bool(torch.isfinite(values).all() and (values[1:] > 0).all() and (values[1:] < 1).all()):
        raise CheckpointError(f"{source}: rotary inv_freq must fall from 1 towards 0 (finite, positive), got {values[:4].tolist()} ...")
    i = torch.arange(len(values), dtype=torch.float64)
    normal = values >= torch.finfo(dtype).tiny  # subnormal float16 entries carry too few digits to fit
    slope = (i[normal] * values[normal].log()).sum() / (i[normal] ** 2).sum()  # log v_i = -(2i / r) log base
    fitted = math.exp(-slope.item() * rotary_dims / 2)
    candidates = [float(f"{fitted:.{digits}g}") for digits in range(1, 8)] + [fitted]
    base = next((b for b in candidates if _same_table(values, b, rotary_dims, dtype)), None)
    if base is None:
        raise CheckpointError(f"{source}: rotary inv_freq is not a geometric RoPE table (closest base {float(f'{fitted:.6g}'):g}, stored as {dtype})")
    return base


def _same_table(values: torch.Tensor, base: float, rotary_dims: int, dtype: torch.dtype) -> bool:
    """Whether base^(-2i / rotary_dims), rounded to `dtype`, is within one step of that precision of
    every stored value (float32 tables: within 1e-4, as before)."""
    i = torch.arange(len(values), dtype=torch.float64)
    expected = (base ** (-2 * i / rotary_dims)).to(dtype).double()
    info = torch.finfo(dtype)
    step = torch.maximum(expected.abs() * info.eps, torch.tensor(info.smallest_normal * info.eps))
    tolerance = torch.maximum(step, expected.abs() * 1e-4) if dtype == torch.float32 else step
    return bool(((values - expected).abs() <= tolerance).all())
