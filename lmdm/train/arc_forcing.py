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

Where it lives: the draws of a step and the self-rollout (steps 1-3) in `lmdm.train.arc_rollout`,
the discriminator and the losses (steps 4-5) in `lmdm.train.arc_discriminator`, the run and its
checkpoints here. Their public names are importable from this module as well.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np
import torch
from torch import nn

from lmdm.checkpoint import (
    CONFIG_FILE,
    MODEL_FILE,
    STEP_PREFIX,
    TRAIN_STATE_FILE,
    config_document,
    load_weights,
    model_tensors,
    read_config,
    read_tensors,
    resolve,
    step_dirs,
    write_directory,
)
from lmdm.conditioning.sketch import has_sketch
from lmdm.conditioning.text import null_conditioning
from lmdm.loading import load_model
from lmdm.model.config import ModelConfig
from lmdm.model.lmdm import LMDM
from lmdm.progress import advance
from lmdm.progress import progress as progress_bar
from lmdm.train import distributed
from lmdm.train.arc_discriminator import (
    DISC_FILE,
    Discriminator,
    ScoreHead,
    Terms,
    build_discriminator,
    default_layer,
    disc_tensors,
    judge,
    judged_segments,
    relativistic,
)
from lmdm.train.arc_rollout import (
    Plan,
    draw_plan,
    exit_steps,
    full_accomp,
    gan_times,
    heard_player,
    jam_sequences,
    rolled,
    rollout,
    rollout_block,
    rollout_targets,
    shift_context,
)
from lmdm.train.latents import LatentSet
from lmdm.train.loop import (
    CODEC_FIELDS,
    end_of_step,
    learning_rate,
    log_interval,
    write_rank_summary,
)
from lmdm.train.objective import encode_captions
from lmdm.train.recipe import ArcSettings, Recipe, TrainSettings
from lmdm.train.state import restore, rng_state, state_tensors

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
    "DISC_FILE",
    "ArcResult",
    "Discriminator",
    "Plan",
    "ScoreHead",
    "Terms",
    "build_discriminator",
    "default_layer",
    "disc_tensors",
    "draw_plan",
    "exit_steps",
    "full_accomp",
    "gan_times",
    "heard_player",
    "jam_sequences",
    "judge",
    "judged_segments",
    "relativistic",
    "rolled",
    "rollout",
    "rollout_block",
    "rollout_targets",
    "save_checkpoint",
    "shift_context",
    "train",
]
