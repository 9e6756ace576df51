"""ARC-Forcing (lmdm.train.arc_forcing): rollouts through the real streaming path, losses, runs."""

import json
import math
from pathlib import Path

import attrs
import numpy as np
import pytest
import torch

import lmdm
from lmdm.checkpoint import step_dirs
from lmdm.conditioning.sketch import SKETCH_INPUTS, sketch_features
from lmdm.corpus.score import STEM_NAMES
from lmdm.loading import load_model
from lmdm.model.config import ModelConfig
from lmdm.model.lmdm import build_model
from lmdm.stream import BlockStream
from lmdm.tensorfile import load_tensors
from lmdm.train import arc_forcing, arc_rollout
from lmdm.train.arc_forcing import (
    DISC_FILE,
    Plan,
    judge,
    judged_segments,
    rollout,
    rollout_block,
    rollout_targets,
    shift_context,
)
from lmdm.train.cli import main as train_cli
from lmdm.train.loop import train
from lmdm.train.recipe import ArcSettings, load_recipe
from tests.torchrun import torchrun

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "recipes" / "tiny"
QUIET = dict(log=lambda s: None, progress=False)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tiny_latents, tmp_path_factory) -> dict[str, Path]:
    """The 4-example tiny latents (tests/conftest.py), a tiny base and a tiny block-causal LMDM."""
    root = tmp_path_factory.mktemp("arc")
    sets = [f"data.latents='{tiny_latents}'"]
    train(load_recipe(TINY / "base.toml", [*sets, f"train.out='{root / 'base'}'", "train.steps=10"]), **QUIET)
    train(load_recipe(TINY / "lmdm_block_causal.toml", [*sets, f"train.out='{root / 'lmdm'}'", f"train.init='{root / 'base'}'", "train.steps=10"]), **QUIET)
    return {"latents": tiny_latents, "base": root / "base", "lmdm": root / "lmdm"}


def arc_recipe(runs: dict[str, Path], out: Path, *sets: str):
    return load_recipe(TINY / "arc.toml", [f"data.latents='{runs['latents']}'", f"train.out='{out}'", f"train.init='{runs['lmdm']}'",
                                           f"arc.disc_init='{runs['base']}'", *sets])


def tiny_stream_inputs(seed: int = 0):
    model = build_model(ModelConfig.tiny(), seed=seed)
    cfg = model.config
    context = torch.randn(1, cfg.latent_dim, cfg.context_frames, generator=torch.Generator().manual_seed(seed + 1))
    return model, context, [model.encode_prompt("dub techno"), model.encode_prompt("bossa nova")]


# ----------------------------------------------------------------------------------------------
# The rollout is the streaming path


@pytest.mark.parametrize("regime", ["block_causal", "encdec"])
def test_a_rollout_exiting_at_the_last_step_is_generate(regime: str) -> None:
    model, context, (cond, _) = tiny_stream_inputs()
    steps, blocks = 3, 4
    out = rollout(model, regime, context, [cond] * blocks, [steps] * blocks, steps, "pingpong", torch.Generator().manual_seed(7), grad=False)
    stream = BlockStream(model, regime)
    stream.history = context.clone()
    g = torch.Generator().manual_seed(7)
    made = torch.cat([stream.generate(cond, steps=steps, sampler="pingpong", generator=g) for _ in range(blocks)], dim=2)
    assert torch.equal(out, made)


@pytest.mark.parametrize("regime", ["block_causal", "encdec"])
def test_the_rollout_runs_on_the_cache_and_equals_the_uncached_reference(regime: str, monkeypatch) -> None:
    model, context, (cond, _) = tiny_stream_inputs(seed=3)
    exits = [1, 3, 2, 1, 2]
    full_passes = []
    forward = model.dit.forward
    monkeypatch.setattr(model.dit, "forward", lambda *a: full_passes.append(1) or forward(*a))
    with torch.no_grad():
        cached = rollout(model, regime, context, [cond] * 5, exits, 4, "pingpong", torch.Generator().manual_seed(1))
        assert not full_passes  # the cached path never runs a full window
        reference = rollout(model, regime, context, [cond] * 5, exits, 4, "pingpong", torch.Generator().manual_seed(1), use_cache=False)
    assert len(full_passes) == sum(exits)
    assert torch.allclose(cached, reference, atol=1e-4), (cached - reference).abs().max()


def test_gradients_flow_only_through_each_blocks_exit_step(monkeypatch) -> None:
    model, context, (a, b) = tiny_stream_inputs(seed=5)
    dit = model.dit
    runs_with_grad = []
    run = dit.run
    monkeypatch.setattr(dit, "run", lambda *args, **kw: runs_with_grad.append(torch.is_grad_enabled()) or run(*args, **kw))
    stream = BlockStream(model, "block_causal")
    stream.history = context.clone()
    g = torch.Generator().manual_seed(2)
    blocks = [rollout_block(stream, c, 4, k, "pingpong", g) for c, k in zip([a, a, b], [1, 3, 2])]
    assert sum(runs_with_grad) == 3  # one pass with gradients per block: its exit step (k=1 includes the fused commit)
    assert all(not k.requires_grad for k, _ in stream.cache.layers) and not stream.history.requires_grad
    # no gradient crosses a block boundary: a block does not depend on the blocks before it through the graph
    assert torch.autograd.grad(blocks[2].sum(), blocks[:2], allow_unused=True) == (None, None)
    torch.cat(blocks, dim=2).pow(2).mean().backward()
    assert dit.project_out.weight.grad.abs().sum() > 0 and dit.layers[0].self_attn.to_qkv.weight.grad.abs().sum() > 0
    # the prompt's cross-attention keys/values are the stream's cache: constants, like the context's keys
    assert dit.to_cond_embed[0].weight.grad is None and dit.layers[0].cross_attn.to_kv.weight.grad is None
    # block the exit step's path: nothing else reaches the weights
    monkeypatch.setattr(arc_rollout, "predicted_x0", lambda x, v, t: x - t * v.detach())
    stream = BlockStream(model, "block_causal")
    stream.history = context.clone()
    assert not any(rollout_block(stream, a, 4, k, "pingpong", g).requires_grad for k in (1, 2, 3))


def test_a_prompt_switch_changes_the_blocks_from_the_switch_on() -> None:
    model, context, (a, b) = tiny_stream_inputs(seed=2)
    exits = [2, 1, 3, 2]
    with torch.no_grad():
        same = rollout(model, "block_causal", context, [a] * 4, exits, 4, "pingpong", torch.Generator().manual_seed(0))
        switched = rollout(model, "block_causal", context, [a, a, b, b], exits, 4, "pingpong", torch.Generator().manual_seed(0))
    B = model.config.block_frames
    assert torch.equal(same[:, :, : 2 * B], switched[:, :, : 2 * B]) and not torch.allclose(same[:, :, 2 * B :], switched[:, :, 2 * B :])


SKETCHED = attrs.evolve(ModelConfig.tiny(), extra_add_inputs=SKETCH_INPUTS)


def sketch_annotations(batch: int, frames: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"melody": torch.randint(0, 90, (batch, frames), generator=g).float(),
            "onsets": (torch.rand(batch, frames, generator=g) < 0.2).float(),
            "loudness_db": -60 * torch.rand(batch, frames, generator=g)}


def test_rollout_targets_carry_the_sketch_of_the_frames_each_block_stands_in_for() -> None:
    cfg, blocks = SKETCHED, 3
    C, B = cfg.context_frames, cfg.block_frames
    ann = sketch_annotations(2, C + blocks * B)
    present = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    targets = rollout_targets(ann, present, torch.tensor([0, 2]), cfg, blocks)  # sequence 1: 2 context blocks dropped, shifted
    assert targets.shape == (2, blocks, cfg.add_dim, B)
    features = sketch_features(ann["melody"], ann["onsets"], ann["loudness_db"], present)  # [2, SK, L]
    sk = cfg.add_slice("melody").start
    for j in range(blocks):
        start = C + j * B
        assert torch.equal(targets[0, j, sk : sk + features.shape[1]], features[0, :, start : start + B])
        assert torch.equal(targets[1, j, sk : sk + features.shape[1]], features[1, :, start - 2 * B : start - B])  # moved with the latents
    assert targets[:, :, :sk].abs().sum() == 0 and targets[1, :, cfg.add_slice("rhythm")].abs().sum() == 0  # dropped control: zeros
    with pytest.raises(ValueError, match="needs annotated latents"):
        rollout_targets({"melody": ann["melody"]}, present, torch.tensor([0, 0]), cfg, blocks)


def test_a_rollout_under_a_sketch_is_generate_under_that_sketch() -> None:
    model = build_model(SKETCHED, seed=3)
    cfg, blocks, steps = model.config, 3, 3
    context = torch.randn(1, cfg.latent_dim, cfg.context_frames, generator=torch.Generator().manual_seed(4))
    cond = model.encode_prompt("dub techno")
    ann = sketch_annotations(1, cfg.context_frames + blocks * cfg.block_frames, seed=5)
    targets = rollout_targets(ann, torch.ones(1, 3), torch.tensor([0]), cfg, blocks)[0]  # [blocks, A, B]
    with torch.no_grad():
        sketched = rollout(model, "block_causal", context, [cond] * blocks, [steps] * blocks, steps, "pingpong",
                           torch.Generator().manual_seed(7), targets=targets)
        plain = rollout(model, "block_causal", context, [cond] * blocks, [steps] * blocks, steps, "pingpong", torch.Generator().manual_seed(7))
    stream = BlockStream(model, "block_causal")
    stream.history = context.clone()
    g = torch.Generator().manual_seed(7)
    made = torch.cat([stream.generate(cond, steps=steps, sampler="pingpong", generator=g, target_add=targets[j : j + 1])
                      for j in range(blocks)], dim=2)
    assert torch.equal(sketched, made) and not torch.allclose(sketched, plain)


JAMMED = attrs.evolve(ModelConfig.tiny(), extra_add_inputs=(("accomp", 1 + ModelConfig.tiny().latent_dim),))


def test_the_rollout_hears_the_player_as_a_live_session_does() -> None:
    from lmdm.codec.placeholder import PlaceholderCodec
    from lmdm.conditioning.jam import PlayerInput

    model = build_model(JAMMED, seed=3)
    cfg, blocks, steps = model.config, 3, 3
    C, B, K = cfg.context_frames, cfg.block_frames, cfg.context_blocks
    player = torch.randn(1, cfg.latent_dim, C + blocks * B, generator=torch.Generator().manual_seed(4))
    # what the rollout hears before block j is what a LiveSession's PlayerInput gives for the same timeline
    live = PlayerInput(PlaceholderCodec(16000, 640, cfg.latent_dim), 16000, 1, B, encode=False)
    live.latents.append(player[0].T.numpy())
    for latency in (1, 2):
        for j in range(blocks):
            n = C + j * B - 3
            assert torch.equal(arc_forcing.heard_player(player, K + j, n, B, latency), live.accomp(K + j, n, latency))
    cond, context = model.encode_prompt("dub techno"), torch.zeros(1, cfg.latent_dim, C)

    def run(p: torch.Tensor, exits=(steps,) * blocks) -> torch.Tensor:
        with torch.no_grad():
            return rollout(model, "block_causal", context, [cond] * blocks, list(exits), steps, "pingpong", torch.Generator().manual_seed(7),
                           player=p, latency=1)

    heard = run(player)
    stream = BlockStream(model, "block_causal")
    stream.history = context.clone()
    g = torch.Generator().manual_seed(7)
    made = []
    for j in range(blocks):  # exiting at the last step is the stream hearing the player, block by block (cache rebuilt as it must be)
        stream.set_accomp(arc_forcing.heard_player(player, K + j, stream.history.shape[2], B, 1))
        made.append(stream.generate(cond, steps=steps, sampler="pingpong", generator=g))
    assert torch.equal(heard, torch.cat(made, dim=2))
    late = player.clone()
    late[:, :, C + (blocks - 2) * B :] = 5.0  # frames after the last block's latency cutoff: never heard
    assert torch.equal(run(late), heard)
    early = player.clone()
    early[:, :, : C - B] = 0.0  # frames heard before the first block
    assert not torch.allclose(run(early), heard)
    with torch.enable_grad():
        x = run(player, exits=(1, 2, 1))
    assert torch.isfinite(x).all()


def test_jamming_steps_draw_after_everything_else_and_zero_the_context() -> None:
    train_settings = load_recipe(TINY / "arc.toml").train
    for step in range(6):
        plain = arc_forcing.draw_plan(step, ArcSettings(switch_prob=0.5), train_settings, JAMMED, 4, torch.Generator().manual_seed(1))
        jammed = arc_forcing.draw_plan(step, ArcSettings(switch_prob=0.5, jam_prob=1.0), train_settings, JAMMED, 4, torch.Generator().manual_seed(1))
        assert not plain.jam and jammed.jam and jammed.switch == 0 and jammed.latency in (1, 2)
        assert jammed.dropped.eq(JAMMED.context_blocks).all() and jammed.sketch_present is None
        assert jammed.jam_stem.shape == (4,) and plain.exits == jammed.exits
        for name in ("text_keep", "t_gan", "gan_noise"):
            assert torch.equal(getattr(plain, name), getattr(jammed, name)), name
    C, B = JAMMED.context_frames, JAMMED.block_frames
    stems = torch.randn(4, 2, len(STEM_NAMES), JAMMED.latent_dim, C + 2 * B)
    real, player = arc_forcing.jam_sequences(stems, jammed, JAMMED)
    rows = torch.arange(4)
    assert real[:, :, :C].eq(0).all() and torch.equal(real[:, :, C:], stems[rows, 1, jammed.jam_stem][:, :, C:])
    assert torch.equal(player, stems[rows, 0, jammed.jam_stem])


def test_sketch_draws_come_last_and_leave_the_other_draws_alone() -> None:
    train_settings = load_recipe(TINY / "arc.toml").train
    plain = arc_forcing.draw_plan(3, ArcSettings(), train_settings, SKETCHED, 4, torch.Generator().manual_seed(1))
    sketched = arc_forcing.draw_plan(3, ArcSettings(sketches=True), train_settings, SKETCHED, 4, torch.Generator().manual_seed(1))
    assert plain.sketch_present is None and sketched.sketch_present.shape == (4, 3)
    assert set(sketched.sketch_present.unique().tolist()) <= {0.0, 1.0}
    for name in ("dropped", "text_keep", "t_gan", "gan_noise"):
        assert torch.equal(getattr(plain, name), getattr(sketched, name)), name
    assert plain.exits == sketched.exits and plain.switch == sketched.switch


# ----------------------------------------------------------------------------------------------
# Pure pieces: context shift, exit steps, what the discriminator judges


def test_context_dropout_with_shift_prepends_zeros() -> None:
    x = torch.arange(1.0, 13.0).view(1, 1, 12).repeat(2, 1, 1)
    shifted = shift_context(x, torch.tensor([0, 2]), 3)
    assert torch.equal(shifted[0], x[0]) and shifted[1, 0].tolist() == [0] * 6 + [1, 2, 3, 4, 5, 6]
    assert shift_context(x, torch.tensor([1, 0]), 3, shift=False)[0, 0].tolist() == [0, 0, 0] + list(range(4, 13))
    g = torch.Generator().manual_seed(0)
    draws = [arc_forcing.exit_steps(1000, 4, False, g)]
    assert set(draws[0]) == {1, 2, 3} and set(arc_forcing.exit_steps(1000, 4, True, g)) == {1, 2, 3, 4}
    plan = arc_forcing.draw_plan(5, ArcSettings(), load_recipe(TINY / "arc.toml").train, ModelConfig.tiny(), 3, g)
    again = arc_forcing.draw_plan(5, ArcSettings(), load_recipe(TINY / "arc.toml").train, ModelConfig.tiny(), 3, torch.Generator().manual_seed(9))
    assert plan.exits == again.exits and plan.switch == again.switch  # the same on every rank (a function of seed and step)


def test_judged_segments() -> None:
    C, B = 12, 4
    assert judged_segments(0, 4, 1, C, B) == [(0, C, C + 16, False)]
    # a switch at block 1 with one grace block: blocks 0 | (1 is free) | 2, 3 under the new prompt, alone
    assert judged_segments(1, 4, 1, C, B) == [(0, C, C + 4, False), (C + 8, C + 8, C + 16, True)]


class ToyDiscriminator(torch.nn.Module):
    """Scores how well a sequence's level (its mean) matches the prompt's first pooled value, per 4 frames."""

    def __init__(self, sign: float = 1.0):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(sign))
        self.calls = []

    def forward(self, x, t, tokens, pooled, first=0, accomp=None):
        self.calls.append((x, pooled, first))
        level = x[:, :, first:].mean(1)  # [b, T]
        asked = pooled[:, :1] if accomp is None else accomp[:, 1:, first:].mean(1)  # a player asks for its own level
        match = -(level - asked) ** 2
        return self.w * match.unflatten(1, (-1, 4)).mean(-1)


def test_the_contrastive_term_prefers_the_true_prompt_and_the_switch_uses_the_neighbours_real() -> None:
    cfg = ModelConfig.tiny()
    C, B, D = cfg.context_frames, cfg.block_frames, cfg.latent_dim
    arc = ArcSettings(rollout_blocks=4, switch_grace=1)
    b, L = 3, C + 4 * B
    real = torch.arange(b, dtype=torch.float32)[:, None, None].expand(b, D, L).clone()  # example i sits at level i
    fake = real + 0.5
    prompts = (torch.zeros(b, 2, 2), torch.arange(b, dtype=torch.float32)[:, None].repeat(1, 2))  # prompt i asks for level i
    others = (prompts[0], prompts[1].roll(1, 0))
    plan = Plan((1, 1, 1, 1), 0, torch.zeros(b, dtype=torch.long), torch.ones(b, dtype=torch.bool), torch.zeros(b), torch.randn(b, D, L))
    good = judge(ToyDiscriminator(1.0), real, fake, plan, prompts, others, arc, cfg, contrastive=True)
    bad = judge(ToyDiscriminator(-1.0), real, fake, plan, prompts, others, arc, cfg, contrastive=True)
    assert good.contrastive < math.log(2) < bad.contrastive  # softplus(D(mismatched) - D(true)): low when the true prompt wins
    assert good.d < math.log(2) < good.g and good.gap > 0  # the real (on its level) beats the fake (off it)
    toy = ToyDiscriminator(1.0)
    judge(toy, real, fake, plan, prompts, others, arc, cfg, contrastive=True).contrastive.backward()
    assert toy.w.grad < 0  # training D on it raises the margin of the true prompt
    dropped = attrs.evolve(plan, text_keep=torch.tensor([True, False, True]))  # rows 1 (own null) and 2 (neighbour null) drop out
    only0 = judge(ToyDiscriminator(1.0), real, fake, dropped, prompts, others, arc, cfg, contrastive=True).contrastive
    own, other = -(0 - 0.0) ** 2, -(0 - 2.0) ** 2
    assert torch.isclose(only0, torch.nn.functional.softplus(torch.tensor(other - own)))
    # a switch at block 1: D sees [context | block 0] with the own prompt, then blocks 2-3 alone with the neighbour's real and prompt
    toy = ToyDiscriminator(1.0)
    switched = attrs.evolve(plan, switch=1)
    judge(toy, real, fake, switched, prompts, others, arc, cfg, contrastive=False)
    (first_x, first_p, first_from), (after_x, after_p, after_from) = toy.calls
    assert first_x.shape[2] == C + B and first_from == C and torch.equal(first_p, prompts[1].repeat(2, 1))
    assert after_x.shape[2] == 2 * B and after_from == 0 and torch.equal(after_p[:b], others[1])
    assert torch.equal(after_x[:b], real.roll(1, 0)[:, :, C + 2 * B :])  # t_gan = 0: the neighbour's real frames as they are


def test_in_a_jamming_step_d_hears_the_player_and_the_contrastive_term_swaps_players() -> None:
    cfg = ModelConfig.tiny()
    C, B, D = cfg.context_frames, cfg.block_frames, cfg.latent_dim
    arc = ArcSettings(rollout_blocks=2)
    b, L = 3, C + 2 * B
    real = torch.arange(b, dtype=torch.float32)[:, None, None].expand(b, D, L).clone()
    fake = real + 0.5
    player = real.clone()  # player i plays at level i: its accompaniment should sit there too
    players = (arc_forcing.full_accomp(player), arc_forcing.full_accomp(player.roll(1, 0)))
    assert players[0].shape == (b, 1 + D, L) and players[0][:, 0].eq(1).all()
    prompts = (torch.zeros(b, 2, 2), torch.full((b, 2), 99.0))  # the prompt asks for nothing the sequences hold
    plan = Plan((1, 1), 0, torch.full((b,), cfg.context_blocks), torch.ones(b, dtype=torch.bool), torch.zeros(b), torch.zeros(b, D, L), jam=True,
                jam_stem=torch.zeros(b, dtype=torch.long))
    good = judge(ToyDiscriminator(1.0), real, fake, plan, prompts, prompts, arc, cfg, contrastive=True, players=players)
    bad = judge(ToyDiscriminator(-1.0), real, fake, plan, prompts, prompts, arc, cfg, contrastive=True, players=players)
    assert good.contrastive < math.log(2) < bad.contrastive  # low when D prefers the true player
    assert good.d < math.log(2) < good.g  # real and fake are told apart by the player, not by the prompt
    with pytest.raises(ValueError, match="no prompt switch"):
        judge(ToyDiscriminator(1.0), real, fake, attrs.evolve(plan, switch=1), prompts, prompts, arc, cfg, contrastive=False, players=players)


# ----------------------------------------------------------------------------------------------
# Runs


@pytest.fixture(scope="module")
def arc_run(runs, tmp_path_factory) -> tuple[Path, arc_forcing.ArcResult]:
    out = tmp_path_factory.mktemp("arc-run") / "straight"
    return out, arc_forcing.train(arc_recipe(runs, out), **QUIET)


def test_an_arc_run_moves_its_losses_and_resumes_exactly(runs, arc_run, tmp_path) -> None:
    out, straight = arc_run
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    g, d = [r["g_loss"] for r in records], [r["d_loss"] for r in records]
    assert straight.step == 6 and len(records) == 3 and all(np.isfinite(g + d))
    assert len(set(g)) == 3 and len(set(d)) == 3  # the losses move
    last = straight.checkpoint
    assert {p.name for p in last.iterdir()} == {"config.json", "model.safetensors", "train_state.safetensors", DISC_FILE}
    doc = json.loads((last / "config.json").read_text())
    assert doc["stage"] == "arc" and doc["regime"] == "block_causal" and doc["recipe"]["arc"]["steps"] == 4
    before, after = load_tensors(step_dirs(runs["lmdm"])[-1] / "model.safetensors")[0], load_tensors(last / "model.safetensors")[0]
    assert not torch.equal(before["dit.project_out.weight"], after["dit.project_out.weight"])  # G trained
    assert torch.equal(before["text.table.weight"], after["text.table.weight"])  # its prompt path is the cache's: untouched
    base = load_tensors(step_dirs(runs["base"])[-1] / "model.safetensors")[0]
    disc = load_tensors(last / DISC_FILE)[0]
    assert not torch.equal(base["dit.layers.0.ff.proj.weight"], disc["dit.layers.0.ff.proj.weight"])  # D trained (from the base)
    # stopped at step 4, resumed to 6: the same generator and discriminator, bit for bit
    arc_forcing.train(arc_recipe(runs, tmp_path / "stopped", "train.stop_at=4"), **QUIET)
    resumed = arc_forcing.train(arc_recipe(runs, tmp_path / "stopped"), resume=True, **QUIET)
    assert resumed.step == 6
    for name in ("model.safetensors", DISC_FILE):
        a, b = load_tensors(last / name)[0], load_tensors(resumed.checkpoint / name)[0]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    with pytest.raises(ValueError, match="--resume"):
        arc_forcing.train(arc_recipe(runs, out), **QUIET)
    with pytest.raises(ValueError, match="no sketch inputs"):  # the tiny model has none
        arc_forcing.train(arc_recipe(runs, tmp_path / "sketched", "arc.sketches=true"), **QUIET)
    # the result is an ordinary live model
    audio = lmdm.LiveSession(load_model(last), prompt="techno", steps=4).render(1.0)
    assert audio.shape == (16000, 1) and np.isfinite(audio).all()


def test_a_jamming_arc_run_trains_on_stems_and_d_learns_the_player(runs, tmp_path) -> None:
    from lmdm.train.latents import encode_corpus

    latent_dim = ModelConfig.tiny().latent_dim
    corpus = json.loads((runs["latents"] / "latents.json").read_text())["corpus"]
    stems = tmp_path / "stems"
    encode_corpus(corpus, "placeholder", stems, latent_dim=latent_dim, progress=False, log=lambda s: None, stems=True)
    sets = [f"data.latents='{stems}'", f'model.extra_add_inputs=[["accomp", {1 + latent_dim}]]', "train.jam_prob=0.5"]
    train(load_recipe(TINY / "base.toml", [*sets, f"train.out='{tmp_path / 'base'}'", "train.steps=4"]), **QUIET)
    train(load_recipe(TINY / "lmdm_block_causal.toml", [*sets, f"train.out='{tmp_path / 'lmdm'}'", f"train.init='{tmp_path / 'base'}'",
                                                          "train.steps=4"]), **QUIET)
    jam_runs = {"latents": stems, "base": tmp_path / "base", "lmdm": tmp_path / "lmdm"}
    result = arc_forcing.train(arc_recipe(jam_runs, tmp_path / "arc", "arc.jam_prob=1.0", "train.steps=4"), **QUIET)
    records = [json.loads(line) for line in (tmp_path / "arc" / "log.jsonl").read_text().splitlines()]
    assert result.step == 4 and all(math.isfinite(r["g_loss"]) and math.isfinite(r["d_player"]) for r in records)
    assert all(r["d_contrastive"] is None for r in records)  # every step jammed: no prompt-contrastive term
    assert np.isfinite(lmdm.LiveSession(load_model(result.checkpoint), prompt="techno", steps=4).render(1.0)).all()
    with pytest.raises(ValueError, match="accomp input"):  # the plain tiny models cannot hear a player
        arc_forcing.train(arc_recipe(runs, tmp_path / "plain", "arc.jam_prob=0.5"), **QUIET)


def test_recipes_and_cli(runs, tmp_path) -> None:
    for name in ("arc_block_causal.toml", "arc_encdec.toml"):
        r = load_recipe(ROOT / "recipes" / name)
        assert r.stage == "arc" and r.arc.steps == 4 and r.arc.contrastive == 2.0
    assert "arc" not in load_recipe(TINY / "base.toml").to_dict()
    with pytest.raises(ValueError, match="stage = \"arc\" only"):
        load_recipe(TINY / "base.toml", ["arc.steps=4"])
    with pytest.raises(ValueError, match="rollout_blocks"):
        load_recipe(TINY / "arc.toml", ["arc.rollout_blocks=0"])
    with pytest.raises(SystemExit):
        train_cli(["lmdm", "--recipe", str(TINY / "arc.toml")])
    with pytest.raises(ValueError, match="batch_size must be >= 2"):
        arc_forcing.train(arc_recipe(runs, tmp_path / "one", "train.batch_size=1"), **QUIET)
    with pytest.raises(ValueError, match="live model"):
        arc_forcing.train(arc_recipe(runs, tmp_path / "base", f"train.init='{runs['base']}'"), **QUIET)
    args = ["arc", "--recipe", str(TINY / "arc.toml"), "--set", f"data.latents='{runs['latents']}'", "--set", f"train.init='{runs['lmdm']}'",
            "--set", f"arc.disc_init='{runs['base']}'", "--out", str(tmp_path / "cli"), "--steps", "2", "--quiet"]
    assert train_cli(args) == 0 and step_dirs(tmp_path / "cli")[-1].name == "step-0000002"


def test_two_process_gloo_run_keeps_replicas_identical(runs, tmp_path) -> None:
    out = tmp_path / "ddp"
    done = torchrun(["arc", "--recipe", str(TINY / "arc.toml"), "--set", f"data.latents='{runs['latents']}'",
                     "--set", f"train.init='{runs['lmdm']}'", "--set", f"arc.disc_init='{runs['base']}'", "--out", str(out),
                     "--steps", "4", "--quiet"], out)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((out / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [r["step"] for r in ranks] == [4, 4] and ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]
    state = load_tensors(step_dirs(out)[-1] / "train_state.safetensors")[0]
    assert "rng.torch.1" in state and any(k.startswith("opt.disc.") for k in state) and any(k.startswith("opt.dit.") for k in state)


# ----------------------------------------------------------------------------------------------
# The measurement script


def test_measurement_pieces() -> None:
    from lmdm.eval.arc_scores import (
        boundary_jumps,
        choose_prompts,
        jump_ratio,
        slope_per_minute,
        switch_partner,
    )

    assert slope_per_minute([0, 60, 120], [1.0, 2.0, 3.0]) == pytest.approx(1.0) and math.isnan(slope_per_minute([0], [1.0]))
    z = np.zeros((2, 12))
    z[:, 8:] = 3.0  # a jump between block 1 and block 2 (blocks of 4 frames)
    jumps = boundary_jumps(z + np.arange(12) * 0.1, 4)
    assert jumps.shape == (2,) and jumps[1] > 10 * jumps[0]
    assert jump_ratio(np.array([5.0, 1.0, 1.0, 4.0, 1.0]), 3) == pytest.approx(4.0)
    captions = ["dark techno at 130 bpm", "deep house groove", "techno with stabs", "lofi hip hop beat", "house piano"]
    chosen = choose_prompts(captions, 4)
    assert chosen[:3] == ["dark techno at 130 bpm", "deep house groove", "lofi hip hop beat"] and len(chosen) == 4
    assert switch_partner(["dark techno", "minimal techno", "deep house"], 0) == "deep house"


def test_conditions_name_steps_and_an_optional_cfg() -> None:
    from lmdm.eval.arc_scores import Condition, compare

    assert Condition.parse("arc@4") == Condition("arc", 4, 1.0) and Condition.parse("arc@4").name == "arc@4"
    assert Condition.parse("stage2@8cfg3") == Condition("stage2", 8, 3.0) and Condition.parse("stage2@8cfg2.5").name == "stage2@8cfg2.5"
    for bad in ("arc", "arc@0", "teacher@4", "arc@4cfg", "stage2@8 cfg3"):
        with pytest.raises(ValueError, match="stage2@STEPS"):
            Condition.parse(bad)
    r = {"fd_slope_per_min": 1.0, "last_minute_fd": 10.0, "fd_probe": 10.0}
    pairs = set(compare({"arc@4": r, "stage2@4": r, "stage2@8": r, "stage2@8cfg3": r}))
    assert pairs == {"arc@4 vs stage2@4", "arc@4 vs stage2@8", "arc@4 vs stage2@8cfg3"}  # the CFG-1 bar stays stage2@8


def test_the_measurement_script_runs_end_to_end(runs, arc_run, tmp_path) -> None:
    from lmdm.eval.arc import main

    out = tmp_path / "measure"
    args = ["--stage2", str(runs["lmdm"]), "--arc", str(arc_run[0]), "--out", str(out), "--prompts", "2", "--minutes", "0.15",
            "--segment-seconds", "5", "--switch-before", "2", "--switch-after", "5.5", "--conditions", "stage2@4,stage2@2cfg2,arc@2", "--quiet"]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    conds = results["regimes"]["block_causal"]["conditions"]
    assert set(conds) == {"stage2@4", "stage2@2cfg2", "arc@2"} and len(conds["arc@2"]["segments"]) == 1  # 9 s: one whole 5 s probe window
    assert {"arc@2 vs stage2@4", "arc@2 vs stage2@2cfg2"} <= set(results["regimes"]["block_causal"]["comparisons"])
    assert conds["arc@2"]["switch"]["latent_jump_ratio"] is not None
    assert (out / "block_causal" / "arc@2" / "01.txt").is_file() and (out / "summary.md").read_text().startswith("# ARC-Forcing")
    assert main([*args[:2], "--arc", str(runs["lmdm"]), "--out", str(out)]) == 2  # two stage-2 models, no ARC one
