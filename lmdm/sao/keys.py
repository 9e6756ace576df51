"""The stable-audio-tools state dict <-> our modules, key by key.

Our DiT's module names follow SAO's on purpose, so most keys differ only by a prefix:

    ours (DiT)                         stable-audio-tools
    timestep_features                  model.model.timestep_features.weight
    to_timestep_embed.0.weight ...     model.model.to_timestep_embed.0.weight ...   (same for to_cond_embed,
                                                                                      to_global_embed, pre/postprocess_conv)
    to_input_add.weight                model.model.to_input_add_embed.weight        (LMDM fine-tunes only)
    project_in.weight                  model.model.transformer.project_in.weight    (and project_out)
    inv_freq                           model.model.transformer.rotary_pos_emb.inv_freq
    layers.N.self_attn.to_qkv.weight   model.model.transformer.layers.N.self_attn.to_qkv.weight   (fused q|k|v, kept fused)
    layers.N.ff.proj.weight            model.model.transformer.layers.N.ff.ff.0.proj.weight
    layers.N.ff.out.weight             model.model.transformer.layers.N.ff.ff.2.weight
    layers.N.<anything else>           model.model.transformer.layers.N.<the same>

    ours (text)                        conditioner.conditioners.seconds_total.embedder.embedding.
    seconds.freqs                      0.weights
    seconds.proj.weight / .bias        1.weight / 1.bias

    ours (codec)                       pretransform.model.
    encoder.layers...weight (a conv)   encoder.layers...weight_g + weight_v   (weight norm, folded here)
    everything else                    the same name

`map_state_dict` reads a whole file at once and reports every missing, unexpected or misshapen key
in one error, so a checkpoint is never half-loaded.
"""

from __future__ import annotations

from typing import Iterable

import attrs
import torch
from torch import nn

from lmdm.checkpoint import CheckpointError
from lmdm.codec.oobleck import fold_weight_norm

DIT_PREFIX = "model.model."
TEXT_PREFIX = "conditioner.conditioners.seconds_total.embedder.embedding."
CODEC_PREFIX = "pretransform.model."
INPUT_ADD = "to_input_add.weight"  # the one key a plain SAO checkpoint lacks: LMDM adds it

_DIT_RULES = (  # (our prefix, SAO prefix), first match wins
    ("timestep_features", "timestep_features.weight"),
    ("to_input_add.", "to_input_add_embed."),
    ("project_in.", "transformer.project_in."),
    ("project_out.", "transformer.project_out."),
    ("inv_freq", "transformer.rotary_pos_emb.inv_freq"),
    ("layers.", "transformer.layers."),
)
_LAYER_RULES = ((".ff.proj.", ".ff.ff.0.proj."), (".ff.out.", ".ff.ff.2."))
_TEXT_RULES = (("seconds.freqs", "0.weights"), ("seconds.proj.", "1."))


def _rewrite(key: str, rules: Iterable[tuple[str, str]], prefix: str) -> str:
    for ours, theirs in rules:
        if key.startswith(ours):
            return prefix + theirs + key[len(ours):]
    return prefix + key


def dit_key(key: str) -> str:
    """Our DiT state-dict key -> the stable-audio-tools key."""
    out = _rewrite(key, _DIT_RULES, DIT_PREFIX)
    for ours, theirs in _LAYER_RULES:
        out = out.replace(ours, theirs)
    return out


def text_key(key: str) -> str:
    """Our SaoTextEncoder key (the seconds embedder; T5 is not in the state dict) -> the SAO key."""
    return _rewrite(key, _TEXT_RULES, TEXT_PREFIX)


def codec_keys(codec: nn.Module) -> dict[str, tuple[str, ...]]:
    """Our Oobleck key -> its SAO key(s): (weight_g, weight_v) for conv weights, else the same name."""
    convs = {name for name, m in codec.named_modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d))}
    out: dict[str, tuple[str, ...]] = {}
    for key in codec.state_dict():
        owner, _, leaf = key.rpartition(".")
        if leaf == "weight" and owner in convs:
            out[key] = (f"{CODEC_PREFIX}{owner}.weight_g", f"{CODEC_PREFIX}{owner}.weight_v")
        else:
            out[key] = (CODEC_PREFIX + key,)
    return out


@attrs.frozen(eq=False)
class Mapped:
    dit: dict[str, torch.Tensor]
    text: dict[str, torch.Tensor]
    codec: dict[str, torch.Tensor]
    fresh: tuple[str, ...]  # our keys the file did not have (only to_input_add of a plain SAO), zero-filled


def _names(names: list[str], limit: int = 8) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def map_state_dict(
    tensors: dict[str, torch.Tensor], dit: nn.Module, text: nn.Module, codec: nn.Module | None, source: str
) -> Mapped:
    """Split a stable-audio-tools state dict into our three modules' state dicts (float32, weight norm folded).

    Every file key must be consumed and every module key found with its exact shape; otherwise one
    CheckpointError lists the missing, unexpected and misshapen keys (by their SAO names).
    `codec=None` ignores the VAE's keys (for a DiT-only read).
    """
    used: set[str] = set()
    missing: list[str] = []
    wrong: list[str] = []

    def take(name: str, shape: tuple[int, ...]) -> torch.Tensor | None:
        if name not in tensors:
            missing.append(name)
            return None
        used.add(name)
        t = tensors[name]
        if tuple(t.shape) != shape:
            wrong.append(f"{name} {tuple(t.shape)} (expected {shape})")
            return None
        return t.float()

    out_dit: dict[str, torch.Tensor] = {}
    fresh: list[str] = []
    for key, ref in dit.state_dict().items():
        name = dit_key(key)
        if key == INPUT_ADD and name not in tensors:  # plain SAO: no context input yet
            fresh.append(key)
            out_dit[key] = torch.zeros(tuple(ref.shape))
            continue
        t = take(name, tuple(ref.shape))
        if t is not None:
            out_dit[key] = t

    out_text: dict[str, torch.Tensor] = {}
    for key, ref in text.state_dict().items():
        t = take(text_key(key), tuple(ref.shape))
        if t is not None:
            out_text[key] = t

    out_codec: dict[str, torch.Tensor] = {}
    if codec is None:
        used.update(k for k in tensors if k.startswith(CODEC_PREFIX))
    else:
        refs = codec.state_dict()
        for key, names in codec_keys(codec).items():
            shape = tuple(refs[key].shape)
            if len(names) == 1:
                t = take(names[0], shape)
            else:
                g, v = take(names[0], (shape[0],) + (1,) * (len(shape) - 1)), take(names[1], shape)
                t = None if g is None or v is None else fold_weight_norm(g, v)
            if t is not None:
                out_codec[key] = t

    unexpected = sorted(set(tensors) - used)
    if missing or unexpected or wrong:
        problems = [f"missing {_names(missing)}"] * bool(missing) + [f"unexpected {_names(unexpected)}"] * bool(unexpected)
        problems += [f"wrong shape {_names(wrong, 4)}"] * bool(wrong)
        hint = ""
        if any(k.startswith(("diffusion.", "state_dict.")) for k in tensors):
            hint = " (this looks like a training checkpoint: unwrap it first with stable-audio-tools' unwrap_model.py)"
        raise CheckpointError(f"{source} does not match its model_config.json: " + "; ".join(problems) + hint)
    return Mapped(out_dit, out_text, out_codec, tuple(fresh))
