"""ARC-Forcing's generator side: the draws of one step, and the self-rollout through BlockStream.

    (seed, step) --draw_plan--> Plan (exit steps, switch, context dropout, t_gan, eps, sketches, jamming)
    real latents --shift_context / jam_sequences--> real sequences [b, D, C + n*B] (and the player)
    context [1, D, C], prompts, exits --rollout--> the generated blocks [1, D, n*B], block by block
        (rollout_block: k - 1 sampler steps without gradients, step k with them, through the KV cache)

The run (`lmdm.train.arc_forcing`) calls these; the discriminator and the losses are in
`lmdm.train.arc_discriminator`. See the docstring of `lmdm.train.arc_forcing` for the method.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch

from lmdm.conditioning.jam import heard_mask
from lmdm.conditioning.sketch import SKETCH_NAMES, sketch_features
from lmdm.conditioning.text import Conditioning
from lmdm.corpus.score import STEM_NAMES
from lmdm.model.config import ModelConfig
from lmdm.model.lmdm import LMDM
from lmdm.sampling import predicted_x0, run_steps, schedule
from lmdm.stream import BlockStream
from lmdm.train.objective import context_dropout
from lmdm.train.recipe import ArcSettings, TrainSettings

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
