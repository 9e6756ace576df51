"""ARC-Forcing: post-train a live model on its own streaming rollouts, against a discriminator.

    lmdm train arc --recipe recipes/arc_block_causal.toml          (docs/arc_forcing.md)

The generator G is a trained LMDM (stage "lmdm", `train.init`); the discriminator D is a copy of
the bidirectional base model (`arc.disc_init`) cut after about 3/4 of its layers, with a 1-D
ConvNeXt head that scores every (stride-downsampled) frame. Steps alternate: even steps update G,
odd steps update D. One step:

1. real sequences of C + n*B latent frames (n = `arc.rollout_blocks`) and their captions; context
   dropout with shift: the oldest k context blocks become zeros *prepended* to the sequence,
   which moves right by k blocks, so the real continuation still follows the (shorter) real past;
2. one exit step k in 1..S-1 per block (S = `arc.steps`), the same on every rank (a function of
   the seed and the step); on some steps (`arc.switch_prob`) the prompt switches at a block s:
   each example continues with the caption of its neighbour in the batch (the batch rolled by one);
3. the self-rollout, one `BlockStream` per example, i.e. exactly the inference path with the KV
   cache (fused commit in block_causal): per block, k - 1 sampler steps without gradients, then
   step k with gradients; its x0-prediction x - t v is the block. The block joins the stream's
   history detached (`BlockStream.append`), and the cache keeps only detached keys/values, so
   gradients never cross a block boundary and flow only through each block's exit step;
4. fake = [context | rollout], real = [context | ground truth]; both noised with the same eps and
   the same t_gan = sigmoid(-U(-6, 2)), then scored by D over the rollout positions (the prompt
   in force as conditioning; no context inputs);
5. G: mean softplus(D(real) - D(fake)); D: mean softplus(D(fake) - D(real)) plus
   `arc.contrastive` * mean softplus(D(real, neighbour's prompt) - D(real, own prompt)).

Prompt switches (beyond the paper). What is "real" after a switch? No real recording switches
from caption A to caption B at block s, so D judges a switched rollout as two sequences:
- up to the switch: [context | blocks < s] against the real [context | ground truth < s] under
  prompt A (D does not see past the switch);
- after it: blocks s + g .. n-1 (g = `arc.switch_grace`) against the *neighbour's* real frames at
  the same positions, under prompt B, without the frames before them. The first g blocks after a
  switch are never judged: the transition is free, the music after it must be genuine B music.
  Continuity across the boundary is left to the generator (its context and cache still hold A);
  it is measured, not trained (docs/arc_forcing.md, "Measurement").

Jamming steps (`arc.jam_prob`, as the reference's jamming ARC configs). The sequence is the mix of
the other stems around one stem of a song, the player. Its context is zeroed in place, so only the
player can tell the generator the beat and the key. The rollout hears the player block by block
through `BlockStream.set_accomp`, up to the live latency cutoff (1 or 2 blocks before each
target, `lmdm.conditioning.jam.heard_mask`). D hears the whole player through its accomp input,
and its contrastive term rolls the *player* instead of the prompt: D learns to tell an
accompaniment that fits its player from one that fits another song's, and G is pushed to fit.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from lmdm.checkpoint import (
    CONFIG_FILE,
    MODEL_FILE,
    STEP_PREFIX,
    TRAIN_STATE_FILE,
    config_document,
    load_weights,
    model_tensors,
    new_modules,
    read_config,
    read_tensors,
    resolve,
    step_dirs,
    write_directory,
)
from lmdm.loading import load_model
from lmdm.conditioning.jam import heard_mask
from lmdm.conditioning.sketch import SKETCH_NAMES, has_sketch, sketch_features
from lmdm.corpus.score import STEM_NAMES
from lmdm.conditioning.text import Conditioning, HashedTextEncoder, null_conditioning
from lmdm.model.config import ModelConfig
from lmdm.model.dit import DiT
from lmdm.model.lmdm import LMDM
from lmdm.progress import advance, progress as progress_bar
from lmdm.sampling import noised, predicted_x0, run_steps, schedule
from lmdm.stream import BlockStream
from lmdm.train import distributed
from lmdm.train.latents import LatentSet
from lmdm.train.loop import CODEC_FIELDS, end_of_step, learning_rate, log_interval, write_rank_summary
from lmdm.train.objective import add_accomp, base_window, context_dropout, encode_captions
from lmdm.train.recipe import ArcSettings, Recipe, TrainSettings
from lmdm.train.state import restore, rng_state, state_tensors

DISC_FILE = "discriminator.safetensors"  # D's weights ("dit.", "text.", "head."), in ARC checkpoints only
HEAD_MULTS = (1, 2, 4)  # the reference head: 3 stages of 2 ConvNeXt blocks, channels x1 x2 x4,
HEAD_STRIDES = (1, 2, 2)  # time strides 1 2 2 (one score per 4 frames), weight-normed convs
HEAD_BLOCKS = 2


# ----------------------------------------------------------------------------------------------
# The draws of one step, as small pure functions


def exit_steps(blocks: int, steps: int, final: bool, generator: torch.Generator) -> list[int]:
    """One exit step per block, uniform in 1..steps-1 (1..steps with `final`)."""
    return torch.randint(1, (steps if final else steps - 1) + 1, (blocks,), generator=generator).tolist()


def shift_context(latents: torch.Tensor, dropped: torch.Tensor, block_frames: int, shift: bool = True) -> torch.Tensor:
    """Zero the first dropped[i] blocks of sequence i ([b, D, L] -> [b, D, L]).

    shift: zeros are prepended and the sequence moves right (its last frames fall off), as a
    stream that started k blocks ago; otherwise the frames are zeroed in place (stage-2 dropout).
    """
    out = torch.zeros_like(latents)
    L = latents.shape[2]
    for i, k in enumerate(dropped.tolist()):
        z = int(k) * block_frames
        out[i, :, z:] = latents[i, :, : L - z] if shift else latents[i, :, z:]
    return out


def gan_times(n: int, logsnr_min: float, logsnr_max: float, generator: torch.Generator) -> torch.Tensor:
    """[n] noise levels of the discriminator's input: log-SNR uniform, t = sigmoid(-logSNR)."""
    return torch.sigmoid(-(logsnr_min + (logsnr_max - logsnr_min) * torch.rand(n, generator=generator)))


def relativistic(winner: torch.Tensor, loser: torch.Tensor) -> torch.Tensor:
    """mean softplus(loser - winner): small when `winner` scores above `loser`, position by position."""
    return F.softplus(loser - winner).mean()


def shared_generator(seed: int, step: int) -> torch.Generator:
    """Draws every rank must agree on (exit steps, the switch): a function of the seed and the step."""
    return torch.Generator().manual_seed(seed * 1_000_003 + 7_919 * (step + 1))


@attrs.frozen(eq=False)
class Plan:
    """Everything random in one ARC step."""

    exits: tuple[int, ...] = attrs.field(converter=tuple)  # exit step per block (same on every rank)
    switch: int  # the prompts switch at this block (0 = no switch; same on every rank)
    dropped: torch.Tensor  # [b] long: context blocks replaced by prepended zeros
    text_keep: torch.Tensor  # [b] bool: False = the null prompt (rollout and discriminator)
    t_gan: torch.Tensor  # [b]
    gan_noise: torch.Tensor  # [b, D, C + n*B]: one eps for real and fake
    sketch_present: torch.Tensor | None = None  # [b, 3] 0/1 per sketch control (arc.sketches), else None
    jam: bool = False  # a jamming step (arc.jam_prob; same on every rank): no switch, no sketch, context zeroed
    jam_stem: torch.Tensor | None = None  # [b] long: the stem each example's player plays (jamming steps)
    latency: int = 1  # blocks between the last heard player frame and each target (jamming steps: 1 or 2)


def draw_plan(step: int, arc: ArcSettings, train: TrainSettings, config: ModelConfig, batch: int, generator: torch.Generator) -> Plan:
    shared = shared_generator(train.seed, step)
    n, grace = arc.rollout_blocks, arc.switch_grace
    exits = exit_steps(n, arc.steps, arc.exit_final, shared)
    switch = 0
    if float(torch.rand(1, generator=shared)) < arc.switch_prob and n >= 2 + grace:
        switch = int(torch.randint(1, n - grace, (1,), generator=shared))  # s in 1..n-1-grace: both sides judged
    K, B = config.context_blocks, config.block_frames
    keep = context_dropout(batch, K, B, train.context_drop_full, train.context_drop_partial, generator)
    dropped = (keep[:, 0, ::B] == 0).sum(1)
    text_keep = torch.rand(batch, generator=generator) >= train.text_dropout
    t_gan = gan_times(batch, arc.gan_logsnr_min, arc.gan_logsnr_max, generator)
    noise = torch.randn(batch, config.latent_dim, config.context_frames + n * B, generator=generator)
    present = None
    if arc.sketches:  # drawn last: recipes without sketches draw exactly as before
        present = (torch.rand(batch, len(SKETCH_NAMES), generator=generator) >= train.sketch_dropout).float()
    if arc.jam_prob > 0 and float(torch.rand(1, generator=shared)) < arc.jam_prob:  # after the switch: same draws without jamming
        stems = torch.randint(0, len(STEM_NAMES), (batch,), generator=generator)
        latency = int(torch.randint(1, 3, (1,), generator=shared))
        return Plan(exits, 0, torch.full_like(dropped, K), text_keep, t_gan, noise, None, True, stems, latency)
    return Plan(exits, switch, dropped, text_keep, t_gan, noise, present)


def jam_sequences(stems: torch.Tensor, plan: Plan, config: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """A jamming step's sequences: stems [b, 2 (stem, rest), S, D, L] -> (real, player), both [b, D, L].

    real: the mix of the other stems, its context (the first C frames) zeroed in place; player:
    the stem the player plays, whole (the rollout hears it up to the latency cutoff, D all of it).
    """
    rows = torch.arange(stems.shape[0])
    real = stems[rows, 1, plan.jam_stem].clone()
    real[:, :, : config.context_frames] = 0.0
    return real, stems[rows, 0, plan.jam_stem]


def heard_player(player: torch.Tensor, block: int, n: int, block_frames: int, latency: int) -> torch.Tensor:
    """The accomp channels [1, 1 + D, n] of the n frames before sequence block `block` (frame
    block * B), from the player's latents [1, D, L]: heard up to `latency` blocks before it."""
    first = block * block_frames - n
    mask = torch.from_numpy(heard_mask(first, n, block, block_frames, player.shape[2], latency))[None, None]  # [1, 1, n]
    return torch.cat((mask, player[:, :, first : first + n] * mask), dim=1)


def full_accomp(player: torch.Tensor) -> torch.Tensor:
    """What D hears: [b, D, L] -> [b, 1 + D, L], every frame heard."""
    return torch.cat((torch.ones_like(player[:, :1]), player), dim=1)


def rollout_targets(annotations: dict[str, torch.Tensor], present: torch.Tensor, dropped: torch.Tensor, config: ModelConfig,
                    blocks: int, shift: bool = True) -> torch.Tensor:
    """The sketch each rollout block is made under: [b, blocks, A, B] target adds.

    annotations {melody, onsets, loudness_db: [b, C + blocks * B]} of the real sequences, moved
    exactly as `shift_context` moves their latents, so block j of example i carries the sketch of
    the real frames it stands in for. present [b, 3]: which controls are given (0 = dropped).
    """
    missing = [k for k in ("melody", "onsets", "loudness_db") if k not in annotations]
    if missing:
        raise ValueError(f"arc.sketches needs annotated latents (missing {', '.join(missing)}): re-encode the corpus")
    C, B = config.context_frames, config.block_frames
    moved = [shift_context(annotations[k][:, None].float(), dropped, B, shift)[:, 0] for k in ("melody", "onsets", "loudness_db")]
    features = sketch_features(*moved, present)  # [b, SKETCH_DIM, L]
    sk = config.add_slice(SKETCH_NAMES[0]).start
    out = torch.zeros(features.shape[0], blocks, config.add_dim, B)
    for j in range(blocks):
        out[:, j, sk : sk + features.shape[1]] = features[:, :, C + j * B : C + (j + 1) * B]
    return out


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


def rolled(items: Sequence) -> list:
    """The batch rolled by one: example i gets example i-1's item (torch.roll(x, 1, 0) for lists)."""
    items = list(items)
    return items[-1:] + items[:-1]


# ----------------------------------------------------------------------------------------------
# The self-rollout through BlockStream


def rollout_block(
    stream: BlockStream, cond: Conditioning, steps: int, exit_step: int, sampler: str, generator: torch.Generator, grad: bool = True,
    target_add: torch.Tensor | None = None,
) -> torch.Tensor:
    """One block of `stream` [1, D, B]: the x0-prediction of sampler step `exit_step` (1-based).

    Steps 1..exit_step-1 run without gradients, exactly as `BlockStream.generate` runs them (same
    random numbers: the noise after the denoiser, one eps per ping-pong step); step exit_step runs
    with gradients when `grad`. The block joins the history detached; the cache is detached too.
    With exit_step = steps this is `generate` itself. target_add [1, A, B]: the block's sketch, as in `generate`.
    """
    if not 1 <= exit_step <= steps:
        raise ValueError(f"exit step {exit_step} is outside 1..{steps}")
    ts = schedule(steps).tolist()
    with torch.no_grad():
        denoise = stream.denoiser(cond, generator=generator, target_add=target_add)
        x = torch.randn((1, stream.config.latent_dim, stream.B), generator=generator)
        x = run_steps(denoise, x, ts, sampler, generator, count=exit_step - 1)
    i = exit_step - 1
    with torch.set_grad_enabled(grad):
        x0 = predicted_x0(x, denoise(x, ts[i], i), ts[i])
    if stream.pending is not None:
        raise RuntimeError("the block was not committed: the exit step did not run through the cache")
    stream.append(x0.detach())  # gradients never cross into the next block's context
    stream.detach_cache()  # a fused commit inside the exit step computed keys with gradients
    return x0


def rollout(
    model: LMDM, regime: str, context: torch.Tensor, conds: Sequence[Conditioning], exits: Sequence[int], steps: int,
    sampler: str, generator: torch.Generator, *, grad: bool = True, use_cache: bool = True, targets: torch.Tensor | None = None,
    player: torch.Tensor | None = None, latency: int = 1,
) -> torch.Tensor:
    """One stream from the clean context [1, D, C], a Conditioning and an exit step per block -> [1, D, n*B].
    targets [n, A, B]: each block's sketch (`rollout_targets`), or None for none. player [1, D, C + n*B]:
    a jamming rollout hears it before each block, up to `latency` blocks back (as LiveSession does)."""
    stream = BlockStream(model, regime, use_cache=use_cache)
    stream.start_from(context.detach())  # exactly C frames, as a stage-2 training window (accomp: C zeros)
    K, B = model.config.context_blocks, model.config.block_frames
    adds = [None] * len(exits) if targets is None else [targets[j : j + 1] for j in range(len(exits))]
    blocks = []
    for j, (c, k, a) in enumerate(zip(conds, exits, adds)):
        if player is not None:
            stream.set_accomp(heard_player(player, K + j, stream.history.shape[2], B, latency))
        blocks.append(rollout_block(stream, c, steps, k, sampler, generator, grad, a))
    return torch.cat(blocks, dim=2)


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
    """Score real and fake sequences [b, D, C + nB] (see the module docstring) -> the loss terms.

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


# ----------------------------------------------------------------------------------------------
# The run


@attrs.frozen
class ArcResult:
    step: int
    g_loss: float  # means over the last logging interval (and over processes)
    d_loss: float  # relativistic term + contrastive * contrastive term
    checkpoint: Path | None
    seconds: float
    seconds_per_step: float

    @property
    def loss(self) -> float:
        """The generator's loss (what `lmdm train arc` prints)."""
        return self.g_loss


def train(recipe: Recipe, *, resume: bool = False, log: Callable[[str], None] | None = None, progress: bool | None = None) -> ArcResult:
    """Run (or continue, with resume=True) an ARC-Forcing recipe. See the module docstring."""
    if recipe.stage != "arc":
        raise ValueError(f"lmdm.train.arc_forcing runs stage \"arc\" recipes, got {recipe.stage!r}")
    t = recipe.train
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    d = distributed.setup(t.device)
    threads = torch.get_num_threads()
    flush = torch.set_flush_denormal(True)
    try:
        if t.threads:
            torch.set_num_threads(t.threads)
        return _train(recipe, d, resume, say if d.main else (lambda line: None), progress if d.main else False)
    finally:
        torch.set_num_threads(threads)
        if flush:
            torch.set_flush_denormal(False)
        distributed.teardown(d)


def _check(recipe: Recipe) -> None:
    t, arc = recipe.train, recipe.arc
    if recipe.model:
        raise ValueError("arc: the model takes its shape from train.init; leave [model] empty")
    if not t.init:
        raise ValueError("arc: train.init must name the trained live model (a stage-2 LMDM checkpoint or run)")
    if t.device != "cpu":
        raise ValueError("arc: the rollouts have only been run on the CPU so far (BlockStream runs on any device, "
                         "the ARC loop has not been tried on another); set train.device = \"cpu\"")
    if t.precision != "fp32":
        raise ValueError("arc: train.precision must be fp32")
    if t.batch_size < 2 and (arc.contrastive > 0 or arc.switch_prob > 0):
        raise ValueError("arc: the contrastive term and prompt switches take another example's prompt: train.batch_size must be >= 2")


def disc_source(arc: ArcSettings, init_doc: dict) -> Path:
    """arc.disc_init, or the base the generator's stage-2 run was initialised from."""
    source = arc.disc_init or ((init_doc.get("recipe") or {}).get("train") or {}).get("init", "")
    if not source:
        raise ValueError("arc: set arc.disc_init (the generator's checkpoint names no base it was fine-tuned from)")
    return resolve(source)


def _seeds(seed: int, rank: int) -> tuple[torch.Generator, np.random.Generator]:
    return torch.Generator().manual_seed(seed * 1_000_003 + rank), np.random.default_rng([seed, rank])


def _optimizer(named: list[tuple[str, nn.Parameter]], lr: float, t: TrainSettings) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not norms, biases, gains, Fourier frequencies, the text table)."""
    decayed = [p for n, p in named if p.ndim >= 2 and not n.endswith(("timestep_features", "original0")) and not n.startswith("text.")]
    ids = {id(p) for p in decayed}
    groups = [{"params": decayed, "weight_decay": t.weight_decay}, {"params": [p for _, p in named if id(p) not in ids], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(t.beta1, t.beta2), eps=1e-8)


def _train(recipe: Recipe, d: distributed.Dist, resume: bool, say: Callable[[str], None], progress: bool | None) -> ArcResult:
    _check(recipe)
    t, arc, lg = recipe.train, recipe.arc, recipe.log
    stop = t.stop_at or t.steps
    if stop > t.steps:
        raise ValueError(f"train.stop_at ({t.stop_at}) is past train.steps ({t.steps})")
    run = Path(t.out)

    # generator, discriminator, data ----------------------------------------------------------
    init_dir = resolve(t.init)
    init_doc = read_config(init_dir)
    if init_doc.get("stage") not in ("lmdm", "arc") or init_doc.get("regime") != t.regime:
        raise ValueError(f"arc: train.init {init_dir} is a {init_doc.get('stage')!r} checkpoint in regime {init_doc.get('regime')!r}; "
                         f"ARC-Forcing needs a live model (stage lmdm) trained in train.regime = {t.regime!r}")
    model = load_model(init_dir)
    config, dit, text = model.config, model.dit, model.text
    data = LatentSet(recipe.data.latents, recipe.data.split, shard=(d.rank, d.world))
    for key in CODEC_FIELDS:
        if getattr(config, key) != data.meta[key]:
            raise ValueError(f"arc: the model has {key} = {getattr(config, key)!r}, the latents {data.meta[key]!r}")
    if arc.sketches and not has_sketch(config.extra_add_inputs):
        raise ValueError("arc.sketches: the model has no sketch inputs (ModelConfig.extra_add_inputs)")
    disc_dir = disc_source(arc, init_doc)
    disc, disc_doc = build_discriminator(disc_dir, arc, config.latent_dim, t.seed)
    if arc.jam_prob > 0:
        if config.add_slice("accomp") is None or disc.dit.config.add_slice("accomp") is None:
            raise ValueError(f"arc.jam_prob: the generator and the discriminator ({disc_dir}) both need the accomp input (ModelConfig.extra_add_inputs)")
        if not data.has_stems:
            raise ValueError(f"arc.jam_prob: {recipe.data.latents} was encoded without stems (lmdm train encode --stems)")
    dit.train()
    text.requires_grad_(False)  # the rollout reads prompts through the stream's cached cross-attention inputs
    frames = config.context_frames + arc.rollout_blocks * config.block_frames

    g_named = [(f"dit.{n}", p) for n, p in dit.named_parameters()]
    d_named = [(f"disc.{n}", p) for n, p in disc.trainable()]
    g_params, d_params = [p for _, p in g_named], [p for _, p in d_named]
    g_names = {id(p): n for n, p in g_named}
    d_names = {id(p): n for n, p in d_named}
    for _, p in disc.named_parameters():
        p.requires_grad_(False)
    opt_g = _optimizer([(n[4:], p) for n, p in g_named], t.lr, t)
    opt_d = _optimizer([(n[5:], p) for n, p in d_named], arc.disc_lr or t.lr, t)
    generator, rng = _seeds(t.seed, d.rank)
    distributed.broadcast_parameters(g_params + d_params, d)

    # resume ---------------------------------------------------------------------------------
    step = 0
    existing = step_dirs(run)
    if existing and not resume:
        raise ValueError(f"{run} already holds checkpoints (latest {existing[-1].name}): pass --resume to continue, or set train.out to a new directory")
    if resume and existing:
        last = existing[-1]
        doc = read_config(last)
        if doc.get("stage") != "arc" or doc.get("model") != config.to_dict() or not (last / DISC_FILE).is_file():
            raise ValueError(f"cannot resume {last}: it is not an ARC checkpoint of this model; use a new train.out")
        load_weights(dit, text, read_tensors(last / MODEL_FILE), last / MODEL_FILE)
        disc.load_state_dict(read_tensors(last / DISC_FILE))
        state = read_tensors(last / TRAIN_STATE_FILE)
        restore(state, opt_d, d_names, d.rank, torch.Generator(), np.random.default_rng())
        step, found = restore(state, opt_g, g_names, d.rank, generator, rng)
        if not found:
            generator, rng = _seeds(t.seed + step, d.rank)
            say(f"resume: no RNG state for rank {d.rank} (different process count); reseeded")
        say(f"resume: from {last} at step {step}")
    elif resume:
        say(f"resume: nothing to resume in {run}, starting at step 0")

    say(
        f"arc ({t.regime}): G {sum(p.numel() for p in g_params) / 1e6:.2f}M from {init_dir}, "
        f"D {sum(p.numel() for p in d_params) / 1e6:.2f}M ({disc.layer} of {disc_doc['model']['depth']} layers of {disc_dir}), "
        f"rollouts of {arc.rollout_blocks} blocks at {arc.steps} {arc.sampler} steps, sequences of {frames} frames, "
        f"batch {t.batch_size} x {d.world} process(es), steps {step} -> {stop} of {t.steps}"
    )
    run.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    interval_start, interval_steps = start, 0
    losses: dict[str, list[float]] = {"g": [], "d": [], "contrastive": [], "player": [], "gap": []}
    means = {k: float("nan") for k in losses}
    norms = {"g": float("nan"), "d": float("nan")}
    null = null_conditioning(config.cond_dim, config.cond_tokens)
    checkpoint: Path | None = existing[-1] if (resume and existing) else None
    start_step = step
    bar = progress_bar(total=stop - step, desc="arc", unit="step", enabled=progress)
    with bar:
        while step < stop:
            g_turn = step % 2 == 0
            lr = learning_rate(step, recipe)
            for opt, base_lr in ((opt_g, t.lr), (opt_d, arc.disc_lr or t.lr)):
                for group in opt.param_groups:
                    group["lr"] = lr * base_lr / t.lr if t.lr else 0.0
            plan = draw_plan(step, arc, t, config, t.batch_size, generator)
            latents, captions, annotations = data.windows(t.batch_size, frames, rng, stems_only=plan.jam)
            player = players = None
            if plan.jam:
                real, player = jam_sequences(annotations["stems"], plan, config)
                players = (full_accomp(player), full_accomp(player.roll(1, 0)))
            else:
                real = shift_context(latents, plan.dropped, config.block_frames, arc.context_shift)
            targets = (None if plan.sketch_present is None else
                       rollout_targets(annotations, plan.sketch_present, plan.dropped, config, arc.rollout_blocks, arc.context_shift))
            context = real[:, :, : config.context_frames]

            # the generator's self-rollouts (with gradients on G's turn)
            with torch.no_grad():
                own = [model.encode_prompt(c) if k else null for c, k in zip(captions, plan.text_keep.tolist())]
            other = rolled(own)
            fakes = []
            for i in range(t.batch_size):
                conds = [other[i] if plan.switch and j >= plan.switch else own[i] for j in range(arc.rollout_blocks)]
                fakes.append(rollout(model, t.regime, context[i : i + 1], conds, plan.exits, arc.steps, arc.sampler, generator, grad=g_turn,
                                     targets=None if targets is None else targets[i],
                                     player=None if player is None else player[i : i + 1], latency=plan.latency))
            fake = torch.cat((context, torch.cat(fakes)), dim=2)

            # the discriminator's verdict
            for p in d_params:
                p.requires_grad_(not g_turn)
            prompts = encode_captions(disc.text, captions, plan.text_keep)
            others = encode_captions(disc.text, rolled(captions), plan.text_keep.roll(1, 0))
            terms = judge(disc, real, fake, plan, prompts, others, arc, config, contrastive=not g_turn, players=players)
            if g_turn:
                loss, params, opt = terms.g, g_params, opt_g
            else:
                loss, params, opt = terms.d + arc.contrastive * terms.contrastive, d_params, opt_d
            opt.zero_grad(set_to_none=True)
            loss.backward()
            distributed.average_gradients(params, d)
            norm = float(torch.nn.utils.clip_grad_norm_(params, t.grad_clip)) if t.grad_clip > 0 else float("nan")
            opt.step()
            step += 1
            interval_steps += 1
            norms["g" if g_turn else "d"] = norm
            losses["g" if g_turn else "d"].append(float(loss.detach()))
            losses["gap"].append(terms.gap)
            if not g_turn:  # jamming steps' contrastive term mismatches the player, the others' the prompt
                losses["player" if plan.jam else "contrastive"].append(float(terms.contrastive.detach()))
            advance(bar, 1, G=means["g"] if not losses["g"] else losses["g"][-1], D=means["d"] if not losses["d"] else losses["d"][-1])

            timed_out = t.max_minutes > 0 and distributed.any_rank(time.monotonic() - start > t.max_minutes * 60, d)
            final = step == stop or timed_out
            if step % lg.every == 0 or final:
                for k, values in losses.items():
                    if values:  # every rank has the same turns, so the same empty lists
                        means[k] = distributed.mean_scalar(float(np.mean(values)) if values else float("nan"), d)
                    values.clear()
                now = time.monotonic()
                per_step = (now - interval_start) / interval_steps
                record = {"step": step, "g_loss": _round(means["g"]), "d_loss": _round(means["d"]), "d_contrastive": _round(means["contrastive"]),
                          "d_player": _round(means["player"]),
                          "gap": _round(means["gap"]), "lr": lr, "grad_norm_g": _round(norms["g"]), "grad_norm_d": _round(norms["d"]),
                          "s_per_step": round(per_step, 4), "elapsed_s": round(now - start, 1)}
                interval_start, interval_steps = now, 0
                log_interval(run, d, bar, say, record, (stop - step) * per_step,
                             f"arc step {step}/{stop} G {means['g']:.4f} D {means['d']:.4f} (contrastive {means['contrastive']:.4f}) "
                             f"D(real)-D(fake) {means['gap']:+.3f} lr {lr:.2e} {per_step:.2f} s/step")
            if step % lg.save_every == 0 or final:
                checkpoint = save_checkpoint(recipe, config, data.meta, d, run, step, model, disc, opt_g, opt_d, g_names, d_names, generator, rng)
            if end_of_step(run, d, say, "arc", t, lg, step, final, timed_out, config, dit, text, model.codec):
                break

    seconds = time.monotonic() - start
    done = step - start_step
    write_rank_summary(run, d, step, g_params + d_params)
    return ArcResult(step, means["g"], means["d"], checkpoint, seconds, seconds / done if done else float("nan"))


def _round(x: float) -> float | None:
    return None if not math.isfinite(x) else round(x, 6)


def save_checkpoint(
    recipe: Recipe, config: ModelConfig, latents_meta: dict, d: distributed.Dist, run: Path, step: int, model: LMDM,
    disc: Discriminator, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, g_names: dict[int, str], d_names: dict[int, str],
    generator: torch.Generator, rng: np.random.Generator,
) -> Path:
    """<run>/step-NNNNNNN/: the generator as an ordinary lmdm checkpoint (load_model, export and
    LiveSession read it as any live model), plus discriminator.safetensors and both optimizers'
    state in train_state.safetensors ("opt.dit.*" for G, "opt.disc.*" for D)."""
    rngs = distributed.gather(rng_state(generator, rng), d)
    directory = run / f"{STEP_PREFIX}{step:07d}"
    if not d.main:
        return directory
    t = recipe.train
    doc = config_document(
        config, latents_meta["codec"], buckets=model.text.buckets, stage="arc", regime=t.regime, step=step,
        recipe=recipe.to_dict(), name=f"arc-{t.regime}-step{step}", latents=str(Path(recipe.data.latents).resolve()),
        processes=d.world, sampler_steps=recipe.arc.steps,
    )
    state = state_tensors(opt_g, g_names, step, rngs)
    state.update({k: v for k, v in state_tensors(opt_d, d_names, step, []).items() if k.startswith("opt.")})
    files = {MODEL_FILE: model_tensors(model.dit, model.text), CONFIG_FILE: doc, TRAIN_STATE_FILE: state, DISC_FILE: disc_tensors(disc)}
    write_directory(directory, files)
    for old in step_dirs(run)[: -recipe.log.keep]:
        shutil.rmtree(old, ignore_errors=True)
    return directory


__all__ = [
    "ArcResult", "DISC_FILE", "Discriminator", "Plan", "ScoreHead", "Terms", "build_discriminator", "default_layer",
    "draw_plan", "exit_steps", "full_accomp", "gan_times", "heard_player", "jam_sequences", "judge", "judged_segments", "relativistic", "rollout", "rollout_block",
    "save_checkpoint", "shift_context", "train",
]
