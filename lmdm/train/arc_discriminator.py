"""ARC-Forcing's discriminator and the losses of one step.

    base checkpoint --build_discriminator--> Discriminator: a bidirectional DiT cut after ~3/4 of its
        layers, then ScoreHead (a 1-D ConvNeXt): noisy sequence [b, D, L], t, prompt -> scores [b, L' // 4]
    real, fake [b, D, C + n*B], Plan --judge--> Terms (G's loss, D's relativistic and contrastive terms)
        (judged_segments: what D sees of a sequence, split at a prompt switch)

Its weights go to DISC_FILE in ARC checkpoints (`disc_tensors`). The run is `lmdm.train.arc_forcing`.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from lmdm.checkpoint import (
    MODEL_FILE,
    load_weights,
    new_modules,
    read_config,
    read_tensors,
)
from lmdm.conditioning.text import HashedTextEncoder
from lmdm.model.config import ModelConfig
from lmdm.model.dit import DiT
from lmdm.sampling import noised
from lmdm.train.arc_rollout import Plan
from lmdm.train.objective import add_accomp, base_window
from lmdm.train.recipe import ArcSettings

DISC_FILE = "discriminator.safetensors"  # D's weights ("dit.", "text.", "head."), in ARC checkpoints only
HEAD_MULTS = (1, 2, 4)  # the reference head: 3 stages of 2 ConvNeXt blocks, channels x1 x2 x4,
HEAD_STRIDES = (1, 2, 2)  # time strides 1 2 2 (one score per 4 frames), weight-normed convs
HEAD_BLOCKS = 2


# ----------------------------------------------------------------------------------------------
# The discriminator


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of [b, c, T]."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class ConvNeXtBlock1d(nn.Module):
    """x + pointwise(GELU(pointwise(norm(depthwise_k7(x))))), weight-normed convs."""

    def __init__(self, channels: int, expand: int = 4, kernel: int = 7):
        super().__init__()
        self.depthwise = weight_norm(nn.Conv1d(channels, channels, kernel, padding=kernel // 2, groups=channels))
        self.norm = ChannelNorm(channels)
        self.up = weight_norm(nn.Conv1d(channels, expand * channels, 1))
        self.down = weight_norm(nn.Conv1d(expand * channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(F.gelu(self.up(self.norm(self.depthwise(x)))))


class ScoreHead(nn.Module):
    """Hidden states [b, W, T] -> scores [b, T // 4]: a 1-D ConvNeXt (the reference's head)."""

    def __init__(self, width: int, channels: int):
        super().__init__()
        layers: list[nn.Module] = [weight_norm(nn.Conv1d(width, channels, 1))]
        c = channels
        for mult, stride in zip(HEAD_MULTS, HEAD_STRIDES):
            out = channels * mult
            if stride > 1 or out != c:
                layers.append(weight_norm(nn.Conv1d(c, out, stride, stride=stride)))
            layers += [ConvNeXtBlock1d(out) for _ in range(HEAD_BLOCKS)]
            c = out
        layers += [ChannelNorm(c), weight_norm(nn.Conv1d(c, 1, 1))]
        self.net = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)[:, 0]


class Discriminator(nn.Module):
    """A bidirectional DiT cut after `layer` layers, and a score head over the judged frames.

    Its input is a whole noisy sequence as the base model was trained on it: frames at positions
    1..L, the t-token at 0, no routing, no mask, zero additive inputs; the prompt by cross-attention.
    """

    def __init__(self, dit: DiT, text: HashedTextEncoder, layer: int, channels: int, seed: int = 0):
        super().__init__()
        if not 1 <= layer <= dit.config.depth:
            raise ValueError(f"arc.disc_layer must be in 1..{dit.config.depth} (the discriminator's depth), got {layer}")
        dit.layers = nn.ModuleList(list(dit.layers)[:layer])  # the layers after the exit are never used
        self.dit, self.text, self.layer = dit, text, layer
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.head = ScoreHead(dit.config.width, channels)

    def trainable(self) -> list[tuple[str, nn.Parameter]]:
        """Everything but the DiT's output projection (features come from inside the trunk)."""
        return [(n, p) for n, p in self.named_parameters() if not n.startswith(("dit.project_out.", "dit.postprocess_conv."))]

    def forward(self, x: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor, pooled: torch.Tensor, first: int = 0,
                accomp: torch.Tensor | None = None) -> torch.Tensor:
        """x [b, D, L] noisy latents, t [b] -> scores [b, (L - first) // 4] of frames first..L-1.
        accomp [b, 1 + D, L]: a player D hears (jamming steps; its base model's accomp input)."""
        b, _, L = x.shape
        w = add_accomp(base_window(b, L, self.dit.config, x.device), accomp, self.dit.config)
        h = torch.cat((self.dit.embed_frames(x, w.add, None), self.dit.embed_time(t, pooled)), dim=1)
        h, _ = self.dit.run(h, w.positions, None, self.dit.cross_kv(tokens))
        return self.head(h[:, first:L].transpose(1, 2))


def default_layer(depth: int) -> int:
    """About 3/4 of the depth (the reference: 12 of 16)."""
    return max(1, (3 * depth) // 4)


def build_discriminator(directory: Path, arc: ArcSettings, latent_dim: int, seed: int) -> tuple[Discriminator, dict]:
    """A discriminator from a (base) checkpoint directory -> (D, that checkpoint's config.json)."""
    doc = read_config(directory)
    config = ModelConfig.from_dict(doc["model"])
    if config.latent_dim != latent_dim:
        raise ValueError(f"the discriminator {directory} has latent_dim {config.latent_dim}, the generator {latent_dim}")
    dit, text = new_modules(config, int(doc.get("text", {}).get("buckets", 8192)))
    load_weights(dit, text, read_tensors(directory / MODEL_FILE), directory / MODEL_FILE)
    return Discriminator(dit, text, arc.disc_layer or default_layer(config.depth), arc.head_channels, seed), doc


def disc_tensors(disc: Discriminator) -> dict[str, torch.Tensor]:
    return {k: v.detach().float().cpu().contiguous() for k, v in disc.state_dict().items()}


# ----------------------------------------------------------------------------------------------
# The losses of one step


def relativistic(winner: torch.Tensor, loser: torch.Tensor) -> torch.Tensor:
    """mean softplus(loser - winner): small when `winner` scores above `loser`, position by position."""
    return F.softplus(loser - winner).mean()


def judged_segments(switch: int, blocks: int, grace: int, context_frames: int, block_frames: int) -> list[tuple[int, int, int, bool]]:
    """What D sees: (first frame, first judged frame, end, after the switch) per segment of the sequence.

    No switch: the whole sequence, the rollout judged. A switch at block s: [0, C + sB) with the
    blocks before s judged under the old prompt, then the blocks from s + grace on, alone, under the
    new one (their real counterpart is the neighbour's sequence).
    """
    C, B = context_frames, block_frames
    if not switch:
        return [(0, C, C + blocks * B, False)]
    after = C + (switch + grace) * B
    return [(0, C, C + switch * B, False), (after, after, C + blocks * B, True)]


@attrs.frozen
class Terms:
    g: torch.Tensor  # softplus(D(real) - D(fake)): G's loss
    d: torch.Tensor  # softplus(D(fake) - D(real)): D's relativistic term
    contrastive: torch.Tensor | None  # softplus(D(real, other prompt) - D(real, own prompt)); D turns only
    gap: float  # mean D(real) - D(fake) over the judged frames


def judge(
    disc: Discriminator, real: torch.Tensor, fake: torch.Tensor, plan: Plan, prompts: tuple[torch.Tensor, torch.Tensor],
    others: tuple[torch.Tensor, torch.Tensor], arc: ArcSettings, config: ModelConfig, *, contrastive: bool,
    players: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Terms:
    """Score real and fake sequences [b, D, C + nB] (see `lmdm.train.arc_forcing`) -> the loss terms.

    prompts: D's (tokens, pooled) of each example's own prompt; others: the batch rolled by one
    (the prompt after a switch, and the mismatched prompt of the contrastive term). players
    (jamming steps): D's accomp input [b, 1 + D, C + nB] of each example's own player and of its
    neighbour's; the contrastive term then mismatches the player, under the example's own prompt.
    """
    if players is not None and plan.switch:
        raise ValueError("a jamming step has no prompt switch")
    b = real.shape[0]
    t = plan.t_gan.to(real.device)
    eps = plan.gan_noise.to(real.device)
    real_scores, fake_scores = [], []
    full_real: torch.Tensor | None = None  # D(real, own prompt) over the whole rollout, if computed
    for start, first, end, after in judged_segments(plan.switch, arc.rollout_blocks, arc.switch_grace, config.context_frames, config.block_frames):
        r = (real.roll(1, 0) if after else real)[:, :, start:end]  # after a switch, the real is the neighbour's
        e = eps[:, :, start:end]
        x = torch.cat((noised(r, e, t[:, None, None]), noised(fake[:, :, start:end], e, t[:, None, None])))
        tokens, pooled = others if after else prompts
        heard = None if players is None else players[0][:, :, start:end].repeat(2, 1, 1)
        s = disc(x, t.repeat(2), tokens.repeat(2, 1, 1), pooled.repeat(2, 1), first - start, heard)
        real_scores.append(s[:b].reshape(-1))
        fake_scores.append(s[b:].reshape(-1))
        if not plan.switch:
            full_real = s[:b]
    real_s, fake_s = torch.cat(real_scores), torch.cat(fake_scores)
    term = None
    if contrastive:
        x = noised(real, eps, t[:, None, None])
        C = config.context_frames
        if players is not None:  # the same prompt, another song's player
            assert full_real is not None  # no switch in a jamming step: the whole rollout was judged
            term = relativistic(full_real, disc(x, t, prompts[0], prompts[1], C, players[1]))
        else:
            if full_real is None:
                both = disc(x.repeat(2, 1, 1), t.repeat(2), torch.cat((prompts[0], others[0])), torch.cat((prompts[1], others[1])), C)
                own, other = both[:b], both[b:]
            else:
                own, other = full_real, disc(x, t, others[0], others[1], C)
            rows = plan.text_keep & plan.text_keep.roll(1, 0)  # both prompts real (not the null prompt)
            term = relativistic(own[rows], other[rows]) if rows.any() else own.sum() * 0.0
    return Terms(relativistic(fake_s, real_s), relativistic(real_s, fake_s), term, float((real_s - fake_s).detach().mean()))
