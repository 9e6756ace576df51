"""Stable Audio Open (Small) checkpoints: key mapping, forward equivalence, Oobleck streaming, convert, T5 errors.

No real weights here: the checkpoints are built below at reduced width and depth, with the exact
key names and shape rules of stable-audio-tools (../shared/research/sao_arch.md section 2), written
out independently of lmdm/sao/keys.py. The reference forward passes are written from the raw
tensors of those state dicts, following SAO's math (prepended or postpended global token, fused
qkv, q/k LayerNorm before partial half-split RoPE, SwiGLU value-first, residual 1x1 convs).
"""

from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lmdm
from lmdm.checkpoint import CheckpointError
from lmdm.cli import main as cli_main
from lmdm.codec.oobleck import OobleckCodec, OobleckConfig
from lmdm.config_fields import meta_numel
from lmdm.model.dit import DiT
from lmdm.model.window import context_add, window_inputs
from lmdm.sao.load import is_sao_directory, load_sao
from lmdm.sao.text import SaoTextEncoder, T5Encoder, T5Unavailable
from lmdm.tensorfile import load_tensors, save_tensors

torch.set_num_threads(1)

# reduced sizes; the rules are SAO-Small's (E=1024, depth 16, 8 heads, D=64, cond 768, T5 max 64)
E, DEPTH, HEADS, D, COND, T5_LEN = 128, 2, 2, 8, 32, 6
HD = E // HEADS
ROT = max(HD // 2, 32)  # RotaryEmbedding(max(dim_head // 2, 32))
VAE = dict(channels=4, c_mults=[1, 2], strides=[2, 4])  # hop 8
SR, HOP = 800, 8
DILATIONS = (1, 3, 9)


# ----------------------------------------------------------------------------------------------
# Checkpoints with SAO's layout


def model_config_json(lmdm_finetune: bool) -> dict:
    """A stable-audio-tools model_config.json at reduced size (SAO-Small's layout; LMDM's additions optional)."""
    dit = {"io_channels": D, "embed_dim": E, "depth": DEPTH, "num_heads": HEADS, "cond_token_dim": COND,
           "global_cond_dim": COND, "transformer_type": "continuous_transformer", "attn_kwargs": {"qk_norm": "ln"}}
    diffusion = {"cross_attention_cond_ids": ["prompt", "seconds_total"], "global_cond_ids": ["seconds_total"],
                 "type": "dit", "diffusion_objective": "rf_denoiser", "config": dit}
    doc = {
        "model_type": "diffusion_cond", "sample_size": 64 * HOP, "sample_rate": SR, "audio_channels": 2,
        "model": {
            "pretransform": {"type": "autoencoder", "iterate_batch": True, "config": {
                "encoder": {"type": "oobleck", "requires_grad": False, "config": {"in_channels": 2, **VAE, "latent_dim": 2 * D, "use_snake": True}},
                "decoder": {"type": "oobleck", "config": {"out_channels": 2, **VAE, "latent_dim": D, "use_snake": True, "final_tanh": False}},
                "bottleneck": {"type": "vae"}, "latent_dim": D, "downsampling_ratio": HOP, "io_channels": 2}},
            "conditioning": {"configs": [
                {"id": "prompt", "type": "t5", "config": {"t5_model_name": "t5-base", "max_length": T5_LEN}},
                {"id": "seconds_total", "type": "number", "config": {"min_val": 0, "max_val": 256}}], "cond_dim": COND},
            "diffusion": diffusion, "io_channels": D,
        },
    }
    if lmdm_finetune:
        dit["postpend"] = True
        dit["input_add_dims"] = [["inpaint_mask", 1], ["inpaint_masked_input", D]]
        diffusion["diffusion_objective"] = "rectified_flow"
        doc["training"] = {"inpainting": {"mask_kwargs": {"fixed_mask_size": 12, "context_router_attention_pattern": "enc-dec",
                                                          "block_causal_chunk_size": 4, "block_causal_window_chunks": 3}}}
    return doc


def sao_state_dict(seed: int, lmdm_finetune: bool, rope_base: float = 1e4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=None):
        return torch.randn(*shape, generator=g) * (scale if scale is not None else 1 / math.sqrt(shape[-1]))

    sd: dict[str, torch.Tensor] = {}
    m = "model.model."
    sd[m + "timestep_features.weight"] = r(128, 1, scale=1.0)
    sd.update({m + "to_timestep_embed.0.weight": r(E, 256), m + "to_timestep_embed.0.bias": r(E, scale=0.1),
               m + "to_timestep_embed.2.weight": r(E, E), m + "to_timestep_embed.2.bias": r(E, scale=0.1)})
    for name in ("to_cond_embed", "to_global_embed"):
        sd.update({f"{m}{name}.0.weight": r(E, COND), f"{m}{name}.2.weight": r(E, E)})
    sd[m + "preprocess_conv.weight"] = r(D, D, 1, scale=0.2)
    sd[m + "postprocess_conv.weight"] = r(D, D, 1, scale=0.2)
    sd[m + "transformer.project_in.weight"] = r(E, D)
    sd[m + "transformer.project_out.weight"] = r(D, E)
    sd[m + "transformer.rotary_pos_emb.inv_freq"] = 1.0 / rope_base ** (torch.arange(0, ROT, 2).double() / ROT).float()
    for n in range(DEPTH):
        p = f"{m}transformer.layers.{n}."
        for norm in ("pre_norm", "cross_attend_norm", "ff_norm"):
            sd[p + norm + ".gamma"] = 1 + r(E, scale=0.1)
            sd[p + norm + ".beta"] = torch.zeros(E)  # a buffer, saved
        sd[p + "self_attn.to_qkv.weight"] = r(3 * E, E)
        sd[p + "self_attn.to_out.weight"] = r(E, E, scale=0.3 / math.sqrt(E))
        sd[p + "cross_attn.to_q.weight"] = r(E, E)
        sd[p + "cross_attn.to_kv.weight"] = r(2 * E, E)
        sd[p + "cross_attn.to_out.weight"] = r(E, E, scale=0.3 / math.sqrt(E))
        for attn in ("self_attn", "cross_attn"):
            for qk in ("q_norm", "k_norm"):
                sd[f"{p}{attn}.{qk}.weight"] = 1 + r(HD, scale=0.1)
                sd[f"{p}{attn}.{qk}.bias"] = r(HD, scale=0.1)
        sd[p + "ff.ff.0.proj.weight"] = r(8 * E, E)
        sd[p + "ff.ff.0.proj.bias"] = r(8 * E, scale=0.1)
        sd[p + "ff.ff.2.weight"] = r(E, 4 * E, scale=0.3 / math.sqrt(4 * E))
        sd[p + "ff.ff.2.bias"] = r(E, scale=0.1)
    if lmdm_finetune:
        sd[m + "to_input_add_embed.weight"] = r(E, 1 + D)
    c = "conditioner.conditioners.seconds_total.embedder.embedding."
    sd.update({c + "0.weights": r(128, scale=1.0), c + "1.weight": r(COND, 257), c + "1.bias": r(COND, scale=0.1)})
    sd.update(oobleck_state_dict(g))
    return sd


def _wn_conv(sd: dict, g: torch.Generator, name: str, c_out: int, c_in: int, k: int, bias: bool = True, transposed: bool = False) -> None:
    shape = (c_in, c_out, k) if transposed else (c_out, c_in, k)
    sd[name + ".weight_v"] = torch.randn(*shape, generator=g)
    sd[name + ".weight_g"] = 0.5 + torch.rand(shape[0], 1, 1, generator=g)  # legacy weight_norm, dim 0
    if bias:
        sd[name + ".bias"] = 0.1 * torch.randn(c_out, generator=g)


def _snake(sd: dict, g: torch.Generator, name: str, c: int) -> None:
    sd[name + ".alpha"] = 0.3 * torch.randn(c, generator=g)
    sd[name + ".beta"] = 0.3 * torch.randn(c, generator=g)


def _residual(sd: dict, g: torch.Generator, name: str, c: int) -> None:
    _snake(sd, g, name + ".layers.0", c)
    _wn_conv(sd, g, name + ".layers.1", c, c, 7)
    _snake(sd, g, name + ".layers.2", c)
    _wn_conv(sd, g, name + ".layers.3", c, c, 1)


def oobleck_state_dict(g: torch.Generator) -> dict[str, torch.Tensor]:
    sd: dict[str, torch.Tensor] = {}
    w = [VAE["channels"] * m for m in [1, *VAE["c_mults"]]]
    n = len(VAE["strides"])
    e = "pretransform.model.encoder.layers."
    _wn_conv(sd, g, e + "0", w[0], 2, 7)
    for i, s in enumerate(VAE["strides"]):
        for j in range(3):
            _residual(sd, g, f"{e}{i + 1}.layers.{j}", w[i])
        _snake(sd, g, f"{e}{i + 1}.layers.3", w[i])
        _wn_conv(sd, g, f"{e}{i + 1}.layers.4", w[i + 1], w[i], 2 * s)
    _snake(sd, g, f"{e}{n + 1}", w[-1])
    _wn_conv(sd, g, f"{e}{n + 2}", 2 * D, w[-1], 3)
    d = "pretransform.model.decoder.layers."
    _wn_conv(sd, g, d + "0", w[-1], D, 7)
    for b, i in enumerate(reversed(range(n))):
        s = VAE["strides"][i]
        _snake(sd, g, f"{d}{b + 1}.layers.0", w[i + 1])
        _wn_conv(sd, g, f"{d}{b + 1}.layers.1", w[i], w[i + 1], 2 * s, transposed=True)
        for j in range(3):
            _residual(sd, g, f"{d}{b + 1}.layers.{j + 2}", w[i])
    _snake(sd, g, f"{d}{n + 1}", w[0])
    _wn_conv(sd, g, f"{d}{n + 2}", 2, w[0], 7, bias=False)
    return sd


def write_sao(directory, seed: int = 0, lmdm_finetune: bool = False, rope_base: float = 1e4, ckpt: bool = False, config: dict | None = None):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model_config.json").write_text(json.dumps(config or model_config_json(lmdm_finetune)))
    sd = sao_state_dict(seed, lmdm_finetune, rope_base)
    if ckpt:
        torch.save({"state_dict": sd}, directory / "model.ckpt")
    else:
        save_tensors(directory / "model.safetensors", sd)
    return sd


@pytest.fixture(scope="module")
def sao_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("sao") / "stable-audio-open-small"
    return path, write_sao(path, seed=0)


@pytest.fixture(scope="module")
def lmdm_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("sao") / "saos-encdec"
    return path, write_sao(path, seed=1, lmdm_finetune=True, rope_base=1e6)


# ----------------------------------------------------------------------------------------------
# Reference math, from the raw tensors


def ln(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def rope(x, pos, inv):  # x [B, h, L, hd]; half-split on the first 2 * len(inv) dims
    r = 2 * len(inv)
    f = pos.double()[:, None] * inv.double()[None]
    f = torch.cat((f, f), -1)
    a, b = x[..., : r // 2], x[..., r // 2 : r]
    rotated = torch.cat((-b, a), -1)
    return torch.cat((x[..., :r] * f.cos() + rotated * f.sin(), x[..., r:]), -1)


def attend(q, k, v, mask=None):
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return s.softmax(-1) @ v


def heads(x):
    return x.view(x.shape[0], x.shape[1], HEADS, -1).transpose(1, 2)


def merge(x):
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)


def seconds_ref(sd, s):
    c = "conditioner.conditioners.seconds_total.embedder.embedding."
    u = (s.double().clamp(0, 256) / 256)[:, None]
    f = 2 * math.pi * u * sd[c + "0.weights"].double()[None]
    return torch.cat((u, f.sin(), f.cos()), -1) @ sd[c + "1.weight"].double().T + sd[c + "1.bias"].double()


def sao_forward(sd, x, t, cross, glob, *, postpend=False, add=None, route=None, mask=None):
    """SAO's DiT forward (stable-audio-tools layout), float64. x [B, D, T] -> v [B, D, T]."""
    sd = {k: v.double() for k, v in sd.items() if k.startswith("model.model.")}
    m, L = "model.model.", "model.model.transformer.layers."
    x, t, cross, glob = x.double(), t.double(), cross.double(), glob.double()
    c = F.silu(cross @ sd[m + "to_cond_embed.0.weight"].T) @ sd[m + "to_cond_embed.2.weight"].T
    f = 2 * math.pi * t[:, None] @ sd[m + "timestep_features.weight"].T  # [B, 128]
    te = torch.cat((f.cos(), f.sin()), -1)
    te = F.silu(te @ sd[m + "to_timestep_embed.0.weight"].T + sd[m + "to_timestep_embed.0.bias"]) @ sd[m + "to_timestep_embed.2.weight"].T + sd[m + "to_timestep_embed.2.bias"]
    g = F.silu(glob @ sd[m + "to_global_embed.0.weight"].T) @ sd[m + "to_global_embed.2.weight"].T + te
    x = x + torch.einsum("oi,bit->bot", sd[m + "preprocess_conv.weight"][:, :, 0], x)
    if route is not None:
        x = x * route
    h = x.transpose(1, 2) @ sd[m + "transformer.project_in.weight"].T
    if route is not None:
        h = h * route.transpose(1, 2)
    if add is not None:
        h = h + add.double().transpose(1, 2) @ sd[m + "to_input_add_embed.weight"].T
    T = h.shape[1]
    if postpend:
        h, pos = torch.cat((h, g[:, None]), 1), torch.cat((torch.arange(1, T + 1), torch.zeros(1, dtype=torch.long)))
    else:
        h, pos = torch.cat((g[:, None], h), 1), torch.arange(T + 1)
    inv = sd[m + "transformer.rotary_pos_emb.inv_freq"]
    for n in range(DEPTH):
        p = f"{L}{n}."
        y = ln(h, sd[p + "pre_norm.gamma"], sd[p + "pre_norm.beta"], 1e-5)
        q, k, v = (y @ sd[p + "self_attn.to_qkv.weight"].T).chunk(3, -1)
        q = ln(heads(q), sd[p + "self_attn.q_norm.weight"], sd[p + "self_attn.q_norm.bias"], 1e-6)
        k = ln(heads(k), sd[p + "self_attn.k_norm.weight"], sd[p + "self_attn.k_norm.bias"], 1e-6)
        h = h + merge(attend(rope(q, pos, inv), rope(k, pos, inv), heads(v), mask)) @ sd[p + "self_attn.to_out.weight"].T
        y = ln(h, sd[p + "cross_attend_norm.gamma"], sd[p + "cross_attend_norm.beta"], 1e-5)
        q = ln(heads(y @ sd[p + "cross_attn.to_q.weight"].T), sd[p + "cross_attn.q_norm.weight"], sd[p + "cross_attn.q_norm.bias"], 1e-6)
        k, v = (c @ sd[p + "cross_attn.to_kv.weight"].T).chunk(2, -1)
        k = ln(heads(k), sd[p + "cross_attn.k_norm.weight"], sd[p + "cross_attn.k_norm.bias"], 1e-6)
        h = h + merge(attend(q, k, heads(v))) @ sd[p + "cross_attn.to_out.weight"].T
        y = ln(h, sd[p + "ff_norm.gamma"], sd[p + "ff_norm.beta"], 1e-5)
        value, gate = (y @ sd[p + "ff.ff.0.proj.weight"].T + sd[p + "ff.ff.0.proj.bias"]).chunk(2, -1)
        h = h + (value * F.silu(gate)) @ sd[p + "ff.ff.2.weight"].T + sd[p + "ff.ff.2.bias"]
    out = h @ sd[m + "transformer.project_out.weight"].T
    out = (out[:, :-1] if postpend else out[:, 1:]).transpose(1, 2)
    return out + torch.einsum("oi,bit->bot", sd[m + "postprocess_conv.weight"][:, :, 0], out)


def oobleck_decode_ref(sd, z):
    """SAO's Oobleck decoder from the raw weight-normed tensors, float64."""
    sd = {k[len("pretransform.model.decoder.layers."):]: v.double() for k, v in sd.items() if k.startswith("pretransform.model.decoder.")}

    def weight(name):
        gain, v = sd[name + ".weight_g"], sd[name + ".weight_v"]
        return gain * v / v.flatten(1).norm(dim=1).view(-1, 1, 1)

    def snake(x, name):
        return x + torch.sin(sd[name + ".alpha"].exp()[:, None] * x) ** 2 / (sd[name + ".beta"].exp()[:, None] + 1e-9)

    def conv(x, name, pad, dil=1):
        return F.conv1d(x, weight(name), sd.get(name + ".bias"), padding=pad, dilation=dil)

    x = conv(z.double(), "0", 3)
    n = len(VAE["strides"])
    for b, s in enumerate(reversed(VAE["strides"])):
        p = f"{b + 1}.layers."
        x = F.conv_transpose1d(snake(x, p + "0"), weight(p + "1"), sd[p + "1.bias"], stride=s, padding=math.ceil(s / 2))
        for j, d in enumerate(DILATIONS):
            u = f"{p}{j + 2}.layers."
            x = x + conv(snake(conv(snake(x, u + "0"), u + "1", 3 * d, d), u + "2"), u + "3", 0)
    return conv(snake(x, f"{n + 1}"), f"{n + 2}", 3)


class FakeT5:
    """Stands in for T5: returns fixed tokens so the DiT can be compared with the reference."""

    def __init__(self, tokens: torch.Tensor):
        self.tokens = tokens

    def __call__(self, texts):
        return self.tokens[: len(texts)]


# ----------------------------------------------------------------------------------------------
# Loading


def test_loads_every_key_and_matches_sao_forward(sao_dir):
    path, sd = sao_dir
    assert is_sao_directory(path) and not is_sao_directory(path.parent)
    model = lmdm.load_model(path)  # the dispatch in lmdm.loading.load_model
    c = model.config
    assert (c.width, c.depth, c.heads, c.rotary_dims, c.rope_base, c.latent_dim, c.cond_tokens) == (E, DEPTH, HEADS, ROT, 1e4, D, T5_LEN + 1)
    assert (c.sample_rate, c.channels, c.hop, c.block_frames, c.context_blocks) == (SR, 2, HOP, 48, 4)
    assert model.dit.to_input_add.weight.abs().max() == 0  # plain SAO: the LMDM context input is new, zeros
    g = torch.Generator().manual_seed(5)
    T, B = 20, 2
    x, t = torch.randn(B, D, T, generator=g), torch.tensor([0.9, 0.3])
    tokens = torch.randn(B, T5_LEN, COND, generator=g)
    tokens[:, 4:] = 0  # T5 padding is zeroed, and still attended to
    model.text.t5 = FakeT5(tokens)
    cond = model.text.encode("a prompt")
    seconds = seconds_ref(sd, torch.tensor([12.0]))[0]
    assert torch.allclose(cond.pooled.double(), seconds, atol=1e-5) and torch.allclose(cond.tokens[-1].double(), seconds, atol=1e-5)
    cross = torch.cat((tokens, seconds.float().expand(B, 1, COND)), 1)
    with torch.no_grad():
        ours = model.dit(x, t, torch.zeros(B, 1 + D, T), cross, seconds.float().expand(B, COND), None,
                         torch.cat((torch.arange(1, T + 1), torch.zeros(1, dtype=torch.long))), None)
    ref = sao_forward(sd, x, t, cross, seconds.expand(B, COND))  # global token PREPENDED, positions 0..T
    assert ref.abs().max() > 0.1
    assert (ours.double() - ref).abs().max() < 1e-4
    # the VAE: our decoder against SAO's, both from the same raw tensors
    z = torch.randn(1, D, 5, generator=g)
    with torch.no_grad():
        assert (model.codec.decode(z).double() - oobleck_decode_ref(sd, z)).abs().max() < 1e-4


def test_lmdm_finetune_postpend_masked_window(lmdm_dir):
    path, sd = lmdm_dir
    model = load_sao(path)
    c = model.config
    assert (c.block_frames, c.context_blocks, c.rope_base, c.add_dim) == (4, 3, 1e6, 1 + D)  # base from the file's inv_freq
    g = torch.Generator().manual_seed(6)
    C, Bk = c.context_frames, c.block_frames
    ctx, x = torch.randn(1, D, C, generator=g), torch.randn(1, D, Bk, generator=g)
    cross, glob = torch.randn(1, T5_LEN + 1, COND, generator=g), torch.randn(1, COND, generator=g)
    w = window_inputs("encdec", context_add(ctx, c.add_dim), Bk, C, c.context_blocks + 1)
    full = torch.cat((torch.zeros(1, D, C), x), 2)
    with torch.no_grad():
        ours = model.dit(full, torch.tensor([0.7]), w.add, cross, glob, w.route, w.positions, w.mask)
    # LMDM's enc-dec mask over [context | target | t-token]: key < C or query >= C
    n = C + Bk + 1
    mask = (torch.arange(n)[None, :] < C) | (torch.arange(n)[:, None] >= C)
    add = torch.cat((torch.cat((torch.ones(1, 1, C), ctx), 1), torch.zeros(1, 1 + D, Bk)), 2)
    route = torch.cat((torch.zeros(1, 1, C), torch.ones(1, 1, Bk)), 2).double()
    ref = sao_forward(sd, full, torch.tensor([0.7]), cross, glob, postpend=True, add=add, route=route, mask=mask)
    assert (ours.double() - ref).abs().max() < 1e-4


def _expect_error(path, *fragments):
    with pytest.raises(CheckpointError) as e:
        lmdm.load_model(path)
    message = str(e.value)
    assert "\n" not in message
    for f in fragments:
        assert f in message, message
    return message


def test_missing_unexpected_and_misshapen_keys_are_listed(tmp_path):
    path = tmp_path / "bad"
    sd = write_sao(path)
    gone = "model.model.transformer.layers.1.cross_attn.k_norm.bias"
    odd = "pretransform.model.decoder.layers.1.layers.1.weight_g"
    del sd[gone]
    sd["model.model.memory_tokens"] = torch.zeros(4, E)
    sd[odd] = torch.ones(3, 1, 1)
    save_tensors(path / "model.safetensors", sd)
    _expect_error(path, f"missing {gone}", "unexpected model.model.memory_tokens", f"wrong shape {odd} (3, 1, 1)")
    # an unsupported architecture is refused by name
    doc = model_config_json(False)
    doc["model"]["diffusion"]["config"]["global_cond_type"] = "adaLN"
    (path / "model_config.json").write_text(json.dumps(doc))
    _expect_error(path, "global_cond_type='adaLN'")


def test_ckpt_is_read_with_weights_only(tmp_path, sao_dir):
    path = tmp_path / "ckpt"
    write_sao(path, seed=0, ckpt=True)
    a, b = load_sao(path), load_sao(sao_dir[0])
    for (k, v), (k2, v2) in zip(a.dit.state_dict().items(), b.dit.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    # a pickle with an object in it is refused by torch.load(weights_only=True), with a one-line error
    torch.save({"state_dict": sao_state_dict(0, False), "hyper_parameters": types.SimpleNamespace(lr=1)}, path / "model.ckpt")
    _expect_error(path, "weights_only=True")


def test_convert_round_trip(tmp_path, lmdm_dir):
    src, _ = lmdm_dir
    out = tmp_path / "converted"
    assert cli_main(["convert", str(src), "--out", str(out)]) == 0
    assert is_sao_directory(out) and (out / "codec.safetensors").is_file()
    doc = json.loads((out / "config.json").read_text())
    assert doc["codec"]["kind"] == "oobleck" and doc["regime"] == "encdec" and doc["sao"]["text"]["max_length"] == T5_LEN
    assert not any(k.startswith("text.") and "t5" in k for k in load_tensors(out / "model.safetensors")[0])  # T5 is never saved
    a, b = load_sao(src), lmdm.load_model(out)
    assert a.config == b.config
    for part in ("dit", "text", "codec"):
        sa, sb = getattr(a, part).state_dict(), getattr(b, part).state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    # and once more, from our format
    assert cli_main(["convert", str(out), "--out", str(tmp_path / "again"), "--half"]) == 0
    c = lmdm.load_model(tmp_path / "again")
    assert (c.dit.to_input_add.weight - a.dit.to_input_add.weight).abs().max() < 1e-2


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("finetune", [False, True])
def test_half_precision_checkpoints_load_as_stable_audio_tools_loads_them(tmp_path, dtype, finetune):
    """Issue #20 class 11: stored in fp16 or bf16, the rotary table is rounded to 3 or 2 digits and
    used to fail the exact geometric check ("not a geometric RoPE table (base 9954.96)")."""
    base = 1e6 if finetune else 1e4
    sd = sao_state_dict(2, finetune, base)
    half, upcast = tmp_path / "half", tmp_path / "upcast"
    for where, tensors in ((half, {k: v.to(dtype) for k, v in sd.items()}), (upcast, {k: v.to(dtype).float() for k, v in sd.items()})):
        write_sao(where, seed=2, lmdm_finetune=finetune, rope_base=base)
        save_tensors(where / "model.safetensors", tensors)
    a, b = lmdm.load_model(half), lmdm.load_model(upcast)
    assert a.config == b.config and a.config.rope_base == base
    for part in ("dit", "text", "codec"):
        sa, sb = getattr(a, part).state_dict(), getattr(b, part).state_dict()
        assert all(sa[k].dtype == torch.float32 and torch.equal(sa[k], sb[k]) for k in sa)  # the stored values, as float32


def test_rope_tables_are_compared_at_their_own_precision():
    from lmdm.sao.spec import rope_base

    for rotary in (32, 64, 128):
        for base in (1e4, 1e5, 1e6):
            table = 1.0 / base ** (torch.arange(0, rotary, 2).float() / rotary)
            assert all(rope_base(table.to(dt), rotary, "x") == base for dt in (torch.float32, torch.float16, torch.bfloat16))
    assert rope_base([1.0 / 12345.0 ** (2 * i / 32) for i in range(16)], 32, "x") == 12345.0  # a list: float32
    bent = 1.0 / 1e4 ** (torch.arange(0, 32, 2).float() / 32)
    bent[5] *= 1.05  # off by more than bfloat16's step
    for dt in (torch.float32, torch.float16, torch.bfloat16):
        with pytest.raises(CheckpointError, match="not a geometric RoPE table"):
            rope_base(bent.to(dt), 32, "x")
    with pytest.raises(CheckpointError, match="fall from 1 towards 0"):
        rope_base(torch.tensor([1.0, float("nan")]), 4, "x")


def test_bad_fields_of_a_converted_checkpoint_are_one_line(tmp_path, sao_dir):
    out = tmp_path / "converted"
    assert cli_main(["convert", str(sao_dir[0]), "--out", str(out)]) == 0
    good = json.loads((out / "config.json").read_text())
    for change, fragment in [
        (lambda d: d.update(sao=5), "sao must be an object"),
        (lambda d: d["sao"].update(text={"max_length": "x"}), "sao.text.max_length must be a whole number"),
        (lambda d: d["sao"].update(text={"seconds_min": 5, "seconds_max": 5}), "min_val < max_val"),
        (lambda d: d["sao"].update(seconds_total="12"), "sao.seconds_total must be a number"),
        (lambda d: d["codec"].update(path=["."]), "codec.path must be a directory name"),
        (lambda d: d["codec"].update(config={**d["codec"]["config"], "strides": [2, "4"]}), "OobleckConfig.strides must be"),
        (lambda d: d["codec"].update(config={**d["codec"]["config"], "base_channels": 10**9}), "OobleckConfig.base_channels must be from"),
        (lambda d: d["model"].update(width=2**20), "ModelConfig.width must be from 1 to 16384"),
    ]:
        doc = json.loads(json.dumps(good))
        change(doc)
        (out / "config.json").write_text(json.dumps(doc))
        _expect_error(out, "config.json" if "Oobleck" not in fragment else "codec of", fragment)


SAO_FIELDS = [
    ("sample_rate",), ("audio_channels",), ("model",), ("model", "diffusion", "config", "embed_dim"), ("model", "diffusion", "config", "depth"),
    ("model", "diffusion", "config", "num_heads"), ("model", "diffusion", "config", "io_channels"), ("model", "diffusion", "config", "attn_kwargs"),
    ("model", "diffusion", "config", "input_add_dims"), ("model", "diffusion", "config", "postpend"), ("model", "diffusion", "diffusion_objective"),
    ("model", "conditioning", "configs"), ("model", "conditioning", "cond_dim"), ("model", "pretransform", "config", "decoder", "config", "strides"),
    ("model", "pretransform", "config", "decoder", "config", "latent_dim"), ("model", "pretransform", "config", "decoder", "config", "channels"),
    ("model", "pretransform", "config", "encoder"), ("model", "pretransform", "scale"), ("model", "pretransform", "config", "downsampling_ratio"),
    ("training",), ("training", "inpainting", "mask_kwargs", "block_causal_chunk_size"), ("training", "inpainting", "mask_kwargs", "fixed_mask_size"),
    ("training", "inpainting", "mask_kwargs", "context_router_attention_pattern"),
]
any_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.sampled_from([0, 1, 2, 4, 8, 2**20]) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6,
)


@settings(max_examples=60, deadline=None)
@given(changes=st.lists(st.tuples(st.sampled_from(SAO_FIELDS), any_json | st.just(None)), min_size=1, max_size=3), finetune=st.booleans())
def test_any_model_config_json_parses_or_is_one_checkpoint_error_line(changes, finetune):
    from lmdm.sao.spec import parse_model_config

    doc = model_config_json(finetune)
    for path, value in changes:
        here = doc
        for key in path[:-1]:
            here = here.get(key) if isinstance(here, dict) else None
        if isinstance(here, dict):
            here[path[-1]] = value
    try:
        spec = parse_model_config(json.loads(json.dumps(doc)), "model_config.json")
    except CheckpointError as e:
        assert "\n" not in str(e) and str(e).startswith("model_config.json")
        return
    assert meta_numel(lambda: DiT(spec.model)) <= 1 << 30


# ----------------------------------------------------------------------------------------------
# Oobleck


def small_oobleck(seed: int, strides=(2, 4), use_snake=True) -> OobleckCodec:
    torch.manual_seed(seed)
    codec = OobleckCodec(OobleckConfig(SR, 2, 4, (1, 2), strides, 3, use_snake)).eval()
    with torch.no_grad():
        for name, p in codec.named_parameters():
            p.normal_(0.0, 0.3 if name.endswith(("alpha", "beta")) else 0.4)
    return codec


def cut(total: int, points: list[int]) -> list[tuple[int, int]]:
    edges = [0, *sorted(p % (total + 1) for p in points), total]
    return list(zip(edges[:-1], edges[1:]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 3), frames=st.integers(1, 60), points=st.lists(st.integers(0, 1000), max_size=6),
       strides=st.sampled_from([(2, 4), (4, 2), (2, 2)]))
def test_oobleck_streaming_equals_offline(seed, frames, points, strides):
    codec = small_oobleck(seed, strides)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(1, 3, frames, generator=g)
    audio = torch.randn(1, 2, frames * codec.hop, generator=g)
    with torch.no_grad():
        offline, encoded = codec.decode(z), codec.encode(audio)
    dec, enc = codec.stream_decoder(), codec.stream_encoder()
    streamed = torch.cat([dec.push(z[..., a:b]) for a, b in cut(frames, points)] + [dec.flush()], -1)
    assert streamed.shape == offline.shape and (streamed - offline).abs().max() <= 1e-4
    samples = frames * codec.hop
    chunks = cut(samples, [p * 7 for p in points])
    streamed = torch.cat([enc.push(audio[..., a:b]) for a, b in chunks] + [enc.flush()], -1)
    assert streamed.shape == encoded.shape and (streamed - encoded).abs().max() <= 1e-4


def test_oobleck_lookahead_is_the_receptive_field():
    codec = small_oobleck(0)
    z = torch.randn(1, 3, 40)
    offline = codec.decode(z).detach()
    for attr in ("lookahead", "context"):  # one frame less of either and the stream is no longer exact
        dec = codec.stream_decoder()
        setattr(dec, attr, getattr(dec, attr) - 1)
        streamed = torch.cat([dec.push(z[..., a:b]) for a, b in ((0, 13), (13, 27), (27, 40))] + [dec.flush()], -1)
        assert (streamed - offline).abs().max() > 1e-3
    full = OobleckCodec()  # SAO-Small's sizes: the latency the docs quote
    assert (full.hop, full.decode_left, full.decode_right) == (2048, 10, 10)
    first = codec.stream_decoder().push(z[..., :20])
    assert first.shape[-1] == (20 - codec.decode_right) * codec.hop  # the last frames wait for the lookahead


# ----------------------------------------------------------------------------------------------
# T5


class FakeTokenizer:
    def __call__(self, texts, truncation, max_length, padding, return_tensors):
        assert truncation and padding == "max_length" and return_tensors == "pt"
        ids = torch.zeros(len(texts), max_length, dtype=torch.long)
        mask = torch.zeros(len(texts), max_length, dtype=torch.long)
        for i, t in enumerate(texts):
            words = [len(w) + 2 for w in t.split()][: max_length - 1] + [1]  # ... EOS (1), then pad (0)
            ids[i, : len(words)] = torch.tensor(words)
            mask[i, : len(words)] = 1
        return {"input_ids": ids, "attention_mask": mask}


class FakeT5Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(64, COND)
        self.calls = 0

    def forward(self, input_ids, attention_mask):
        self.calls += 1
        return types.SimpleNamespace(last_hidden_state=self.embed(input_ids) + 1.0)  # nonzero on padding too


def test_t5_wrapper_interface_with_fakes(sao_dir):
    model_t5 = FakeT5Model()
    t5 = T5Encoder(None, T5_LEN, tokenizer=FakeTokenizer(), model=model_t5)
    out = t5(["two words", "one"])
    assert out.shape == (2, T5_LEN, COND)
    assert out[0, :3].abs().min() > 0 and out[0, 3:].abs().max() == 0  # 2 words + EOS kept, padding zeroed
    assert out[1, :2].abs().min() > 0 and out[1, 2:].abs().max() == 0
    t5(["one", "two words"])
    assert model_t5.calls == 1  # frozen: cached per text
    text = SaoTextEncoder(COND, T5_LEN, t5)
    text.load_state_dict(load_sao(sao_dir[0]).text.state_dict())
    cond = text.encode("two words")
    assert cond.tokens.shape == (T5_LEN + 1, COND) and torch.equal(cond.tokens[:T5_LEN], out[0])
    assert torch.allclose(cond.pooled.double(), seconds_ref(sao_dir[1], torch.tensor([12.0]))[0], atol=1e-5)
    assert list(text.state_dict()) == ["seconds.freqs", "seconds.proj.weight", "seconds.proj.bias"]


def test_t5_errors_name_what_is_missing(tmp_path, sao_dir, monkeypatch):
    monkeypatch.delenv("LMDM_T5", raising=False)
    model = lmdm.load_model(sao_dir[0])  # loading needs no T5; the first prompt does
    with pytest.raises(T5Unavailable, match=r"t5-base does not exist"):
        model.encode_prompt("dub techno")
    t5 = tmp_path / "t5-base"
    t5.mkdir()
    (t5 / "config.json").write_text("{}")
    monkeypatch.setenv("LMDM_T5", str(t5))
    with pytest.raises(T5Unavailable, match=r"missing model\.safetensors or pytorch_model\.bin, spiece\.model or tokenizer\.json"):
        load_sao(sao_dir[0]).encode_prompt("dub techno")
    (t5 / "model.safetensors").write_bytes(b"")
    (t5 / "spiece.model").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed (it is not, here)
    with pytest.raises(T5Unavailable) as e:
        load_sao(sao_dir[0]).encode_prompt("dub techno")
    assert "`transformers`" in str(e.value) and "pip install 'lmdm[sao]'" in str(e.value) and "\n" not in str(e.value)


# ----------------------------------------------------------------------------------------------
# Training from SAO weights


class FakeCorpus:
    """What lmdm.train.latents.encode_corpus reads from a CorpusReader."""

    def __init__(self, root):
        self.sample_rate, self.hop, self.frame_rate = SR, HOP, SR / HOP
        self.entries = [types.SimpleNamespace(id=f"{i:06d}", caption="a caption", split="train", frames=24 + 3 * i) for i in range(3)]

    def select(self, split=None):
        return self.entries

    def load_audio(self, entry):
        return np.random.default_rng(int(entry.id)).standard_normal(entry.frames * HOP).astype(np.float32) * 0.1

    def load_annotations(self, entry):
        return types.SimpleNamespace(arrays=lambda: {"onsets": np.zeros(entry.frames, np.float32)})


def test_train_lmdm_starts_from_sao_weights(tmp_path, sao_dir, monkeypatch):
    import lmdm.train.latents
    from lmdm.train.latents import encode_corpus
    from lmdm.train.loop import train
    from lmdm.train.recipe import load_recipe

    monkeypatch.setattr(lmdm.train.latents, "CorpusReader", FakeCorpus)
    latents = tmp_path / "latents"
    assert encode_corpus("corpus", str(sao_dir[0]), latents, progress=False, log=lambda s: None).encoded == 3
    assert lmdm.train.latents.LatentSet(latents).codec().config == load_sao(sao_dir[0]).codec.config  # open_codec knows "oobleck"
    sao = load_sao(sao_dir[0])
    with torch.no_grad():
        audio = torch.from_numpy(FakeCorpus("x").load_audio(FakeCorpus("x").entries[1]))[None, None].repeat(1, 2, 1)
        assert torch.allclose(load_tensors(latents / "000001.safetensors")[0]["latents"], sao.codec.encode(audio)[0], atol=1e-5)
    recipe = load_recipe(Path(__file__).parent.parent / "recipes" / "sao_small_lmdm.toml", overrides=[
        f"data.latents={latents}", f"train.init={sao_dir[0]}", f"train.out={tmp_path / 'run'}", "train.steps=2",
        "train.batch_size=2", "train.device=cpu", "train.precision=fp32", "train.text_dropout=1.0",  # no T5 here
        "model.block_frames=4", "model.context_blocks=3", "log.sample_every=0", "log.every=1", "train.warmup_steps=0"])
    result = train(recipe, log=lambda s: None, progress=False)
    assert result.step == 2 and math.isfinite(result.loss)
    trained = lmdm.load_model(tmp_path / "run")  # our format, codec and text settings from the SAO directory
    assert isinstance(trained.codec, OobleckCodec) and trained.text.max_tokens == T5_LEN + 1
    assert trained.config.block_frames == 4 and trained.dit.to_input_add.weight.abs().max() > 0  # default init, then trained
    moved = (trained.dit.project_in.weight - sao.dit.project_in.weight).abs().max()
    assert 0 < moved < 1e-2  # started from the SAO weights, two small steps away
