"""The diffusion transformer (DiT), in the Stable Audio Open Small family.

Data flow, in the order of the classes below:

    noisy latents x [B, D, L] --preprocess (1x1, residual)--> x * route --project_in--> h * route
    + to_input_add([context_mask, clean_latent, extras...])        (clean context enters here)
    then one timestep token (t + pooled text) appended at the END, RoPE position 0
    --> depth x [pre-LN self-attention (q/k LayerNorm, partial RoPE),
                 pre-LN cross-attention to text tokens,
                 pre-LN SwiGLU feed-forward]
    --> project_out on the frame tokens --postprocess (1x1, residual)--> velocity v [B, D, L]

`route` is 0 on context frames and 1 on target frames ("context routing"): a context token
carries only its clean latent, never noise. The layers take explicit positions, masks and an
optional per-layer prefix of cached keys/values, so the streaming code in `lmdm.stream` can run
exactly the same math on any slice of a sequence.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lmdm.model.cache import KVBuffer
from lmdm.model.config import ModelConfig
from lmdm.model.linear import Linear, linear
from lmdm.model.rope import apply_rope, inv_freq, rope_angles

KV = tuple[torch.Tensor, torch.Tensor]  # (k, v), each [B, heads, tokens, head_dim]


class LayerNorm(nn.Module):
    """LayerNorm with a learnable gain and a fixed zero bias (kept as a buffer, as SAO does)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))
        self.register_buffer("beta", torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.gamma, self.beta, self.eps)


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, L, heads*hd] -> [B, heads, L, hd]"""
    b, n, _ = x.shape
    return x.view(b, n, heads, -1).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    """[B, heads, L, hd] -> [B, L, heads*hd]"""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


class SelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.heads = cfg.heads
        self.to_qkv = Linear(cfg.width, 3 * cfg.width, bias=False)  # fused, q | k | v
        self.q_norm = nn.LayerNorm(cfg.head_dim, eps=1e-6)
        self.k_norm = nn.LayerNorm(cfg.head_dim, eps=1e-6)
        self.to_out = Linear(cfg.width, cfg.width, bias=False)

    def forward(
        self,
        x: torch.Tensor,  # [B, Lq, W]
        cos: torch.Tensor,  # [Lq, r]
        sin: torch.Tensor,
        mask: torch.Tensor | None,  # [Lq, Lpast + Lq] bool, or None
        past: KV | KVBuffer | None,  # keys/values to prepend, already normed and rotated
    ) -> tuple[torch.Tensor, KV]:
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        qk = torch.cat((self.q_norm(_heads(q, self.heads)), self.k_norm(_heads(k, self.heads))), dim=1)
        q, k = apply_rope(qk, cos, sin).chunk(2, dim=1)  # one rotation for both: [B, 2*heads, Lq, hd]
        v = _heads(v, self.heads)
        new = (k, v)
        if isinstance(past, KVBuffer):  # cached frames with room for ours: written in place
            k, v = past.with_new(k, v)
        elif past is not None:
            k = torch.cat((past[0], k), dim=2)
            v = torch.cat((past[1], v), dim=2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.to_out(_merge(out)), new


class CrossAttention(nn.Module):
    """Frames read the conditioning tokens. No RoPE; padding tokens are zeros and are read too.

    ``mask`` [Lq, N] (bool, optional): which tokens each query reads. Only the uncached reference of
    a stream uses it, to read each chunk's history under the prompt it was made with (several
    prompts' tokens side by side, lmdm.stream); a model always reads one prompt's N tokens whole."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.heads = cfg.heads
        self.to_q = Linear(cfg.width, cfg.width, bias=False)
        self.to_kv = Linear(cfg.width, 2 * cfg.width, bias=False)
        self.q_norm = nn.LayerNorm(cfg.head_dim, eps=1e-6)
        self.k_norm = nn.LayerNorm(cfg.head_dim, eps=1e-6)
        self.to_out = Linear(cfg.width, cfg.width, bias=False)

    def kv(self, cond: torch.Tensor) -> KV:
        """cond [B, N, W] (already embedded) -> cacheable (k, v)."""
        k, v = self.to_kv(cond).chunk(2, dim=-1)
        return self.k_norm(_heads(k, self.heads)), _heads(v, self.heads)

    def forward(self, x: torch.Tensor, kv: KV, mask: torch.Tensor | None = None) -> torch.Tensor:
        q = self.q_norm(_heads(self.to_q(x), self.heads))
        k, v = kv
        if k.shape[0] != q.shape[0]:  # one prompt shared by a batch of sequences
            k, v = k.expand(q.shape[0], -1, -1, -1), v.expand(q.shape[0], -1, -1, -1)
        return self.to_out(_merge(F.scaled_dot_product_attention(q, k, v, attn_mask=mask)))


class FeedForward(nn.Module):
    """SwiGLU: value * silu(gate), value first."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        hidden = cfg.mlp_ratio * cfg.width
        self.proj = Linear(cfg.width, 2 * hidden)
        self.out = Linear(hidden, cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return self.out(value * F.silu(gate))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.pre_norm = LayerNorm(cfg.width)
        self.self_attn = SelfAttention(cfg)
        self.cross_attend_norm = LayerNorm(cfg.width)
        self.cross_attn = CrossAttention(cfg)
        self.ff_norm = LayerNorm(cfg.width)
        self.ff = FeedForward(cfg)

    def forward(
        self, x, cos, sin, mask, cross_kv: KV, past: KV | KVBuffer | None, cross_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, KV]:
        a, new = self.self_attn(self.pre_norm(x), cos, sin, mask, past)
        x = x + a
        x = x + self.cross_attn(self.cross_attend_norm(x), cross_kv, cross_mask)
        x = x + self.ff(self.ff_norm(x))
        return x, new


class DiT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        w = cfg.width
        # timestep: learned Fourier features -> MLP; plus the pooled text as global conditioning
        self.timestep_features = nn.Parameter(torch.randn(cfg.timestep_features // 2, 1))
        self.to_timestep_embed = nn.Sequential(Linear(cfg.timestep_features, w), nn.SiLU(), Linear(w, w))
        self.to_global_embed = nn.Sequential(Linear(cfg.cond_dim, w, bias=False), nn.SiLU(), Linear(w, w, bias=False))
        self.to_cond_embed = nn.Sequential(Linear(cfg.cond_dim, w, bias=False), nn.SiLU(), Linear(w, w, bias=False))
        # frames in and out
        self.preprocess_conv = nn.Conv1d(cfg.latent_dim, cfg.latent_dim, 1, bias=False)
        self.project_in = Linear(cfg.latent_dim, w, bias=False)
        self.to_input_add = Linear(cfg.add_dim, w, bias=False)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.project_out = Linear(w, cfg.latent_dim, bias=False)
        self.postprocess_conv = nn.Conv1d(cfg.latent_dim, cfg.latent_dim, 1, bias=False)
        self.register_buffer("inv_freq", inv_freq(cfg.rotary_dims, cfg.rope_base))

    @property
    def dtype(self) -> torch.dtype:
        """The weights' dtype (lmdm.model.placement): inputs are cast to it, velocities come back float32."""
        return self.project_in.weight.dtype

    # embeddings ---------------------------------------------------------------------------
    def embed_frames(self, x: torch.Tensor, add: torch.Tensor, route: torch.Tensor | None) -> torch.Tensor:
        """x [B, D, L] noisy latents, add [B, A, L] additive inputs, route [B|1, 1, L] -> [B, L, W]."""
        x, add = x.to(self.dtype), add.to(self.dtype)
        route = None if route is None else route.to(self.dtype)
        x = x.transpose(1, 2)  # [B, L, D]
        x = x + linear(x, self.preprocess_conv.weight[:, :, 0])  # the 1x1 conv as a matmul (faster on CPU)
        if route is not None:
            x = x * route.transpose(1, 2)
        h = self.project_in(x)
        if route is not None:
            h = h * route.transpose(1, 2)
        return h + self.to_input_add(add.transpose(1, 2))

    def embed_context(self, add: torch.Tensor) -> torch.Tensor:
        """Clean context frames only: what embed_frames gives with route = 0, without the dead work."""
        return self.to_input_add(add.to(self.dtype).transpose(1, 2))

    def embed_time(self, t: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """t [B] in [0, 1], pooled [B, cond_dim] -> the timestep token [B, 1, W]."""
        f = 2 * math.pi * t.float()[:, None] * self.timestep_features.float()[:, 0][None, :]  # [B, F/2], float32
        f = torch.cat((f.cos(), f.sin()), dim=-1).to(self.dtype)
        return (self.to_timestep_embed(f) + self.to_global_embed(pooled.to(self.dtype)))[:, None, :]

    def cross_kv(self, cond: torch.Tensor) -> list[KV]:
        """cond tokens [B, N, cond_dim] -> per-layer cross-attention (k, v): compute once per prompt."""
        c = self.to_cond_embed(cond.to(self.dtype))
        return [layer.cross_attn.kv(c) for layer in self.layers]

    def rope(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return rope_angles(positions, self.inv_freq)

    # the trunk ----------------------------------------------------------------------------
    def run(
        self,
        h: torch.Tensor,  # [B, Lq, W] query tokens
        positions: torch.Tensor,  # [Lq]
        mask: torch.Tensor | None,  # [Lq, Lpast + Lq]
        cross_kv: list[KV],
        past: list[KV] | list[KVBuffer] | None = None,
        exit_layer: int | None = None,
        cross_mask: torch.Tensor | None = None,  # [Lq, N]: which prompt tokens each query reads (None: all)
    ) -> tuple[torch.Tensor, list[KV]]:
        """Run the layers; returns the hidden states and each layer's new (k, v) for these tokens."""
        cos, sin = self.rope(positions)
        new_kv: list[KV] = []
        for i, layer in enumerate(self.layers[:exit_layer]):
            h, kv = layer(h, cos, sin, mask, cross_kv[i], None if past is None else past[i], cross_mask)
            new_kv.append(kv)
        return h, new_kv

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """frame hidden states [B, L, W] -> velocity [B, D, L], float32"""
        v = self.project_out(h)  # [B, L, D]
        v = v + linear(v, self.postprocess_conv.weight[:, :, 0])
        return v.transpose(1, 2).float()

    def forward(
        self,
        x: torch.Tensor,  # [B, D, L] noisy latents (context frames are ignored where route == 0)
        t: torch.Tensor,  # [B]
        add: torch.Tensor,  # [B, A, L]
        cond: torch.Tensor,  # [B, N, cond_dim]
        pooled: torch.Tensor,  # [B, cond_dim]
        route: torch.Tensor | None,  # [B|1, 1, L]
        positions: torch.Tensor,  # [L + 1], the t-token's last
        mask: torch.Tensor | None,  # [L + 1, L + 1]
        cross_mask: torch.Tensor | None = None,  # [L + 1, N]: which of cond's tokens each frame reads (None: all)
    ) -> torch.Tensor:
        """The full (uncached) forward over a whole sequence, as used in training: v [B, D, L]."""
        h = torch.cat((self.embed_frames(x, add, route), self.embed_time(t, pooled)), dim=1)
        h, _ = self.run(h, positions, mask, self.cross_kv(cond), cross_mask=cross_mask)
        return self.head(h[:, :-1])


def init_weights(model: DiT, generator: torch.Generator) -> None:
    """Variance-preserving N(0, 1/fan_in) init; residual outputs scaled by 1/sqrt(2*depth); zero biases."""
    depth = model.config.depth
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif name.endswith(("norm.weight", "gamma")):
                p.fill_(1.0)
            elif name == "timestep_features":
                p.normal_(0.0, 1.0, generator=generator)
            elif name.endswith(("preprocess_conv.weight", "postprocess_conv.weight")):
                p.normal_(0.0, 0.02, generator=generator)
            else:
                std = 1.0 / math.sqrt(p.shape[1])  # variance-preserving
                if name.endswith(("to_out.weight", "ff.out.weight")):
                    std /= math.sqrt(2 * depth)  # residual branches
                p.normal_(0.0, std, generator=generator)
