"""The training loop shared by both stages: data, optimizer, steps, checkpoints, logs, previews.

    train(load_recipe("recipes/base.toml"))                    # lmdm train base --recipe ...
    train(load_recipe("recipes/lmdm_block_causal.toml"))       # lmdm train lmdm --recipe ...

One step: each process draws its own batch of latent windows and its own `Draws` (noise, t,
dropouts), computes the stage's loss (lmdm.train.objective), backpropagates, averages gradients
over processes, clips, and takes an AdamW step. A run directory holds step-NNNNNNN/ checkpoints
(lmdm.checkpoint format + train_state.safetensors), log.jsonl and samples/.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

import attrs
import numpy as np
import torch

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
from lmdm.corpus.caption import short_caption
from lmdm.model.config import ModelConfig
from lmdm.model.lmdm import build_model
from lmdm.progress import advance, format_duration, progress as progress_bar, shown
from lmdm.sao.load import is_sao_directory
from lmdm.sao.train import init_from_sao
from lmdm.train import distributed
from lmdm.train.latents import LatentSet
from lmdm.train.objective import draw, step_loss
from lmdm.train.preview import render_preview
from lmdm.train.recipe import Recipe
from lmdm.train.state import restore, rng_state, state_tensors

PRESETS = {"small": ModelConfig.small, "tiny": ModelConfig.tiny}
CODEC_FIELDS = ("latent_dim", "sample_rate", "frame_rate", "channels")
LOG_FILE = "log.jsonl"


@attrs.frozen
class TrainResult:
    step: int
    loss: float  # mean over the last logging interval (and over processes)
    checkpoint: Path | None
    seconds: float
    seconds_per_step: float


def model_config(recipe: Recipe, latents_meta: dict[str, Any], init: dict[str, Any] | None) -> ModelConfig:
    """[model] preset + overrides, with the codec's fields taken from the latents (a conflict is an error).

    Without a preset, a run takes the shape of its train.init checkpoint, else the small preset.
    """
    overrides = dict(recipe.model)
    preset = overrides.pop("preset", None)
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"model.preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    for key in CODEC_FIELDS:
        if key in overrides and overrides[key] != latents_meta[key]:
            raise ValueError(f"model.{key} = {overrides[key]!r}, but the latents' codec has {key} = {latents_meta[key]!r}; leave it out (it comes from the codec)")
    if preset is None and init is not None:
        base = dict(init["model"])
    else:
        base = PRESETS[preset or "small"]().to_dict()
    base.update({k: latents_meta[k] for k in CODEC_FIELDS})
    base.update(overrides)
    return ModelConfig.from_dict(base)


ADD_WEIGHT = "dit.to_input_add.weight"  # [width, add_dim]: the additive inputs' projection


def grow_add_inputs(tensors: dict[str, torch.Tensor], old: ModelConfig, new: ModelConfig) -> dict[str, torch.Tensor]:
    """Init weights for a model that has more additive inputs than its init checkpoint.

    Where `old`'s additive inputs are the first of `new`'s and everything else about the two
    models is the same, the projection gets zero columns for the new inputs: the grown model
    computes exactly what the old one did until training teaches it to use them (docs/training.md,
    "The clock"). Any other difference is left for load_weights to report.
    """
    same = {k: v for k, v in old.to_dict().items() if k != "extra_add_inputs"} == {k: v for k, v in new.to_dict().items() if k != "extra_add_inputs"}
    if not same or new.add_inputs[: len(old.add_inputs)] != old.add_inputs or new.add_dim == old.add_dim or ADD_WEIGHT not in tensors:
        return tensors
    weight = tensors[ADD_WEIGHT]  # [width, old add_dim]
    grown = torch.zeros(weight.shape[0], new.add_dim, dtype=weight.dtype)
    grown[:, : old.add_dim] = weight
    return {**tensors, ADD_WEIGHT: grown}


def shortened(captions: list[str], share: float, rng: np.random.Generator) -> list[str]:
    """Each caption replaced, with probability `share`, by a short prompt of its facts
    (lmdm.corpus.caption.short_caption). Share 0 draws nothing: old recipes train exactly as before."""
    if share <= 0:
        return captions
    return [short_caption(c, rng) if rng.random() < share else c for c in captions]


def step_geometry(stage: str, config: ModelConfig, rng: np.random.Generator) -> ModelConfig:
    """The block length of one lmdm step: `config` itself, or for a model trained on several
    (`block_choices`) one of its geometries drawn uniformly (drawn only then, so a one-length run
    draws exactly as before); each process draws its own, from its window generator."""
    if stage == "base" or not config.block_choices:
        return config
    b, _ = config.geometries[int(rng.integers(len(config.geometries)))]
    return config.reblocked(b)


def learning_rate(step: int, recipe: Recipe) -> float:
    """Linear warm-up over warmup_steps, then constant or cosine down to lr * min_lr_ratio at `steps`."""
    t = recipe.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    if t.schedule == "constant":
        return t.lr
    progress = min(1.0, (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps))
    return t.lr * (t.min_lr_ratio + (1 - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def weights_digest(params: list[torch.nn.Parameter]) -> str:
    """sha256 of every weight's bytes: equal digests mean bit-identical replicas."""
    h = hashlib.sha256()
    for p in params:
        h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _seeds(seed: int, rank: int) -> tuple[torch.Generator, np.random.Generator]:
    """Per-rank generators: the torch one for draws, the numpy one for choosing windows."""
    return torch.Generator().manual_seed(seed * 1_000_003 + rank), np.random.default_rng([seed, rank])


def train(
    recipe: Recipe,
    *,
    resume: bool = False,
    log: Callable[[str], None] | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Run (or continue, with resume=True) the recipe's stage. See the module docstring."""
    t = recipe.train
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    d = distributed.setup(t.device)
    threads = torch.get_num_threads()
    flush = torch.set_flush_denormal(True)  # subnormal floats can make a CPU step 10x slower; False where unsupported
    try:
        if t.threads:
            torch.set_num_threads(t.threads)  # for this run only
        return _train(recipe, d, resume, say if d.main else (lambda line: None), progress if d.main else False)
    finally:
        torch.set_num_threads(threads)
        if flush:
            torch.set_flush_denormal(False)
        distributed.teardown(d)


def _train(recipe: Recipe, d: distributed.Dist, resume: bool, say: Callable[[str], None], progress: bool | None) -> TrainResult:
    t, lg = recipe.train, recipe.log
    stop = t.stop_at or t.steps
    if stop > t.steps:
        raise ValueError(f"train.stop_at ({t.stop_at}) is past train.steps ({t.steps})")
    run = Path(t.out)

    # data and model ---------------------------------------------------------------------
    data = LatentSet(recipe.data.latents, recipe.data.split, shard=(d.rank, d.world))
    init_doc = None
    configure = lambda base: model_config(recipe, data.meta, {"model": base.to_dict()})  # noqa: E731
    sao = init_from_sao(t.init, data.meta, t.seed, configure) if t.init and is_sao_directory(t.init) else None  # docs/sao.md
    if t.init and sao is None:
        init_dir = resolve(t.init)
        init_doc = read_config(init_dir)
    config = model_config(recipe, data.meta, init_doc) if sao is None else sao.config
    codec = data.codec() if sao is None else sao.codec
    model = build_model(config, seed=t.seed, codec=codec) if sao is None else sao
    dit, text = model.dit, model.text
    if init_doc is not None:
        init_config = ModelConfig.from_dict(init_doc["model"])
        tensors = grow_add_inputs(read_tensors(init_dir / MODEL_FILE), init_config, config)
        load_weights(dit, text, tensors, init_dir / MODEL_FILE)
        grown = [n for n, _ in config.add_inputs[len(init_config.add_inputs):]]
        say(f"init: weights from {init_dir} (stage {init_doc.get('stage')}, step {init_doc.get('step')})"
            + (f"; new additive inputs {', '.join(grown)} start at zero" if tensors.get(ADD_WEIGHT) is not None and grown else ""))
    dit.to(d.device).train()
    text.to(d.device).train()
    frames = (recipe.data.frames or config.window_frames) if recipe.stage == "base" else config.window_frames

    named = [(f"dit.{n}", p) for n, p in dit.named_parameters()] + [(f"text.{n}", p) for n, p in text.named_parameters()]
    params = [p for _, p in named]
    names = {id(p): n for n, p in named}
    # weight decay on the DiT's matrices only: not norms, biases, Fourier frequencies or the text table
    decayed = {id(p) for n, p in dit.named_parameters() if p.ndim >= 2 and n != "timestep_features"}
    groups = [
        {"params": [p for p in params if id(p) in decayed], "weight_decay": t.weight_decay},
        {"params": [p for p in params if id(p) not in decayed], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=t.lr, betas=(t.beta1, t.beta2), eps=1e-8)
    generator, rng = _seeds(t.seed, d.rank)
    distributed.broadcast_parameters(params, d)

    # resume -------------------------------------------------------------------------------
    step = 0
    existing = step_dirs(run)
    if existing and not resume:
        raise ValueError(f"{run} already holds checkpoints (latest {existing[-1].name}): pass --resume to continue, or set train.out to a new directory")
    if resume and existing:
        last = existing[-1]
        doc = read_config(last)
        if doc.get("stage") != recipe.stage or doc.get("model") != config.to_dict():
            raise ValueError(f"cannot resume {last}: it was trained as stage {doc.get('stage')!r} with another model config; use a new train.out")
        load_weights(dit, text, read_tensors(last / MODEL_FILE), last / MODEL_FILE)
        step, found = restore(read_tensors(last / TRAIN_STATE_FILE), optimizer, names, d.rank, generator, rng)
        if not found:
            generator, rng = _seeds(t.seed + step, d.rank)
            say(f"resume: no RNG state for rank {d.rank} (different process count); reseeded")
        say(f"resume: from {last} at step {step}")
    elif resume:
        say(f"resume: nothing to resume in {run}, starting at step 0")

    # the loop -----------------------------------------------------------------------------
    autocast = torch.autocast(torch.device(d.device).type, dtype=torch.bfloat16, enabled=t.precision == "bf16")
    parameters = sum(p.numel() for p in params)
    say(
        f"{recipe.stage}{'' if recipe.stage == 'base' else ' (' + t.regime + ')'}: {parameters / 1e6:.2f}M parameters, "
        f"{len(data)} examples on this rank, windows of {frames} frames"
        f"{'' if recipe.stage == 'base' or not config.block_choices else ' (or ' + ', '.join(f'{(k + 1) * b} as {k} + 1 blocks of {b}' for b, k in config.block_choices) + ')'}, batch {t.batch_size} x {d.world} process(es), "
        f"steps {step} -> {stop} of {t.steps}, device {d.device}, {t.precision}"
    )
    run.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    interval_start, interval_losses = start, []
    first_loss = last_loss = float("nan")
    mean_loss = float("nan")
    checkpoint: Path | None = existing[-1] if (resume and existing) else None
    start_step = step
    bar = progress_bar(total=stop - step, desc=recipe.stage, unit="step", enabled=progress)
    with bar:
        while step < stop:
            lr = learning_rate(step, recipe)
            for group in optimizer.param_groups:
                group["lr"] = lr
            geometry = step_geometry(recipe.stage, config, rng)
            window = frames if recipe.stage == "base" else geometry.window_frames  # this step's block length
            latents, captions, annotations = data.windows(t.batch_size, window, rng)
            captions = shortened(captions, t.short_captions, rng)
            draws = draw(recipe.stage, geometry, t.batch_size, window, t, generator)
            with autocast:
                loss = step_loss(recipe.stage, t.regime, dit, text, latents.to(d.device), captions, draws,
                                 {k: a.to(d.device) for k, a in annotations.items()}, geometry)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            distributed.average_gradients(params, d)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, t.grad_clip)) if t.grad_clip > 0 else float("nan")
            optimizer.step()
            step += 1
            last_loss = float(loss.item())
            if step == start_step + 1:
                first_loss = last_loss
            interval_losses.append(last_loss)
            advance(bar, 1, loss=last_loss, step=step)

            timed_out = t.max_minutes > 0 and distributed.any_rank(time.monotonic() - start > t.max_minutes * 60, d)
            final = step == stop or timed_out
            if step % lg.every == 0 or final:
                mean_loss = distributed.mean_scalar(float(np.mean(interval_losses)), d)
                now = time.monotonic()
                per_step = (now - interval_start) / len(interval_losses)
                record = {"step": step, "loss": round(mean_loss, 6), "lr": lr, "grad_norm": round(grad_norm, 4),
                          "s_per_step": round(per_step, 4), "elapsed_s": round(now - start, 1)}
                interval_start, interval_losses = now, []
                log_interval(run, d, bar, say, record, (stop - step) * per_step,
                             f"{recipe.stage} step {step}/{stop} loss {mean_loss:.4f} lr {lr:.2e} grad {grad_norm:.3f} {per_step:.3f} s/step")
            if step % lg.save_every == 0 or final:
                checkpoint = save_checkpoint(recipe, config, data.meta, d, run, step, dit, text, optimizer, names, generator, rng)
            if end_of_step(run, d, say, recipe.stage, t, lg, step, final, timed_out, config, dit, text, codec):
                break

    seconds = time.monotonic() - start
    done = step - start_step
    write_rank_summary(run, d, step, params, first_loss=first_loss, last_loss=last_loss)
    return TrainResult(step, mean_loss, checkpoint, seconds, seconds / done if done else float("nan"))


def log_interval(run: Path, d: distributed.Dist, bar: Any, say: Callable[[str], None], record: dict[str, Any],
                 eta_seconds: float, line: str) -> None:
    """A log interval's record into <run>/log.jsonl, and its line (with the ETA) to stderr when no progress bar shows (rank 0)."""
    if not d.main:
        return
    with open(run / LOG_FILE, "a") as f:
        f.write(json.dumps(record) + "\n")
    if not shown(bar):
        say(f"{line} eta {format_duration(eta_seconds)}")


def end_of_step(run: Path, d: distributed.Dist, say: Callable[[str], None], stage: str, t: Any, lg: Any, step: int, final: bool,
                timed_out: bool, config: ModelConfig, dit: torch.nn.Module, text: torch.nn.Module, codec: Any) -> bool:
    """After a step's checkpoint: the preview when due (rank 0); True when train.max_minutes ran out (stop)."""
    if d.main and lg.sample_every and (step % lg.sample_every == 0 or final):
        path = render_preview(run / "samples" / f"step-{step:07d}.wav", stage, t.regime, config, dit, text, codec,
                              lg.sample_prompt, lg.sample_seconds, lg.sample_steps)
        say(f"preview: {path}")
    if timed_out:
        say(f"stopped after train.max_minutes = {t.max_minutes:g} at step {step}; continue with --resume")
    return timed_out


def write_rank_summary(run: Path, d: distributed.Dist, step: int, params: list[torch.nn.Parameter], **extra: Any) -> None:
    """Under torchrun, <run>/rank-N.json: this rank's step and a digest of its weights (replicas must agree)."""
    if d.world > 1:
        summary = {"rank": d.rank, "world": d.world, "step": step, "weights_sha256": weights_digest(params), **extra}
        (run / f"rank-{d.rank}.json").write_text(json.dumps(summary) + "\n")


def save_checkpoint(
    recipe: Recipe, config: ModelConfig, latents_meta: dict[str, Any], d: distributed.Dist, run: Path, step: int,
    dit: torch.nn.Module, text: torch.nn.Module, optimizer: torch.optim.Optimizer, names: dict[int, str],
    generator: torch.Generator, rng: np.random.Generator,
) -> Path:
    """Write <run>/step-NNNNNNN/ atomically (rank 0) and keep the newest `log.keep` of them."""
    rngs = distributed.gather(rng_state(generator, rng), d)  # every rank takes part
    directory = run / f"{STEP_PREFIX}{step:07d}"
    if not d.main:
        return directory
    regime = recipe.train.regime if recipe.stage == "lmdm" else None
    doc = config_document(
        config, latents_meta["codec"], buckets=text.buckets, stage=recipe.stage, regime=regime, step=step,
        recipe=recipe.to_dict(), name=f"{recipe.stage}{'' if regime is None else '-' + regime}-step{step}",
        latents=str(Path(recipe.data.latents).resolve()), processes=d.world,
    )
    files = {MODEL_FILE: model_tensors(dit, text), CONFIG_FILE: doc, TRAIN_STATE_FILE: state_tensors(optimizer, names, step, rngs)}
    write_directory(directory, files)
    for old in step_dirs(run)[: -recipe.log.keep]:
        shutil.rmtree(old, ignore_errors=True)
    return directory
