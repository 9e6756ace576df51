"""The training pipeline: encode, base and LMDM stages, checkpoints, resume, DDP, load_model."""

import json
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import lmdm
from lmdm.checkpoint import CheckpointError, save_model, step_dirs
from lmdm.loading import load_model
from lmdm.codec.placeholder import PlaceholderCodec
from lmdm.tensorfile import load_tensors, save_tensors
from lmdm.corpus import CorpusReader
from lmdm.model.config import ModelConfig
from lmdm.model.lmdm import build_model
from lmdm.stream import BlockStream
from lmdm.train.cli import main as train_cli
from lmdm.train.latents import LatentSet, check_rates, encode_corpus, read_index
from lmdm.train.loop import step_geometry, train
from lmdm.train.objective import context_dropout, draw, lmdm_window, sample_timesteps, step_loss
from lmdm.train.recipe import TrainSettings, load_recipe
from tests.torchrun import torchrun

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "recipes" / "tiny"
LATENT_DIM = 8  # ModelConfig.tiny()'s


def recipe(name: str, latents: Path, out: Path, *sets: str):
    return load_recipe(TINY / name, [f"data.latents='{latents}'", f"train.out='{out}'", *sets])


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_tensors(step_dirs(run)[-1] / "model.safetensors")[0]


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def latents(tiny_latents) -> Path:
    """A 4-example corpus of 3 s songs, encoded with the placeholder codec (tests/conftest.py)."""
    return tiny_latents


@pytest.fixture(scope="module")
def base_run(latents, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("base") / "run"
    train(recipe("base.toml", latents, out, "train.steps=10"), log=lambda s: None, progress=False)
    return out


# ----------------------------------------------------------------------------------------------
# Stage 1: encode


def test_encode_aligns_latents_with_annotations_and_resumes(latents) -> None:
    meta = json.loads((latents / "latents.json").read_text())
    assert meta["codec"]["kind"] == "placeholder" and meta["frame_rate"] == 25.0 and meta["latent_dim"] == LATENT_DIM
    reader = CorpusReader(meta["corpus"])
    records = read_index(latents)
    assert len(records) == len(reader) == 4
    tensors, info = load_tensors(latents / f"{records[0]['id']}.safetensors")
    frames = reader.entry(records[0]["id"]).frames
    assert tensors["latents"].shape == (LATENT_DIM, frames)
    assert tensors["ann.chroma"].shape == (frames, 12) and tensors["ann.melody"].shape == (frames,)
    assert info["caption"] == records[0]["caption"] == reader.entry(records[0]["id"]).caption
    again = encode_corpus(meta["corpus"], "placeholder", latents, latent_dim=LATENT_DIM, progress=False, log=lambda s: None)
    assert again.encoded == 0 and again.examples == 4
    with pytest.raises(ValueError, match="other settings"):
        encode_corpus(meta["corpus"], "placeholder", latents, latent_dim=4, progress=False, log=lambda s: None)
    with pytest.raises(ValueError, match="frames/s"):
        check_rates(16000, 640, PlaceholderCodec(16000, 320, LATENT_DIM))


def test_latent_windows_are_reproducible_and_sharded(latents) -> None:
    data = LatentSet(latents, "all")
    a, caps = data.batch(3, 32, np.random.default_rng(1))
    b, _ = data.batch(3, 32, np.random.default_rng(1))
    assert a.shape == (3, LATENT_DIM, 32) and torch.equal(a, b) and len(caps) == 3
    r0, r1 = LatentSet(latents, "all", shard=(0, 2)), LatentSet(latents, "all", shard=(1, 2))
    assert set(r0.ids).isdisjoint(r1.ids) and len(r0) + len(r1) == 4


# ----------------------------------------------------------------------------------------------
# Recipes


def test_recipe_overrides_and_clear_errors(tmp_path) -> None:
    r = load_recipe(TINY / "base.toml", ["train.lr=1e-4", "model.depth=3", "train.device=cuda", "log.sample_prompt=\"a b\""])
    assert r.train.lr == 1e-4 and r.model["depth"] == 3 and r.train.device == "cuda" and r.log.sample_prompt == "a b"
    for sets, msg in [
        (["train.lrr=1"], "unknown setting train.lrr"),
        (["train.lr=fast"], "train.lr must be float"),
        (["train.timesteps=sobol"], "timesteps must be one of"),
        (["train.text_dropout=2"], r"in \[0, 1\]"),
        (["lr=1"], "unknown recipe entry"),
        (["nodot"], "section.key=value"),
    ]:
        with pytest.raises(ValueError, match=msg):
            load_recipe(TINY / "base.toml", sets)
    for name in ("base.toml", "lmdm_block_causal.toml", "lmdm_encdec.toml"):
        load_recipe(ROOT / "recipes" / name)  # the checked-in recipes parse


def test_cli_refuses_a_recipe_of_the_other_stage(capsys) -> None:
    with pytest.raises(SystemExit):
        train_cli(["base", "--recipe", str(TINY / "lmdm_encdec.toml")])
    assert "lmdm train lmdm" in capsys.readouterr().err
    assert train_cli(["nonsense"]) == 2


# ----------------------------------------------------------------------------------------------
# The objective: training inputs equal inference inputs


@pytest.mark.parametrize("regime", ["encdec", "block_causal"])
def test_training_window_is_what_the_stream_reference_runs(regime: str) -> None:
    """BlockStream's uncached path calls DiT.forward with exactly the tensors training builds."""
    model = build_model(ModelConfig.tiny(), seed=0)
    cfg = model.config
    ctx = torch.randn(1, cfg.latent_dim, cfg.context_frames, generator=torch.Generator().manual_seed(1))
    calls = []
    forward = model.dit.forward

    def spy(*args):
        out = forward(*args)
        calls.append((args, out))
        return out

    model.dit.forward = spy
    stream = BlockStream(model, regime, use_cache=False)
    stream.history = ctx.clone()  # exactly C frames of clean context
    stream.generate(model.encode_prompt("dub techno"), steps=2, sampler="euler", generator=torch.Generator().manual_seed(0))
    del model.dit.forward
    (x, t, add, tokens, pooled, route, positions, mask, cross_mask), v_stream = calls[0]
    assert cross_mask is None  # one prompt throughout: every frame reads all its tokens, as in training

    w = lmdm_window(regime, ctx, cfg, keep=torch.ones(1, 1, cfg.context_frames), present=torch.ones(1, 1, 1))
    assert torch.equal(w.add, add) and torch.equal(w.route, route) and torch.equal(w.positions, positions)
    assert torch.equal(w.mask, mask)
    C, B = cfg.context_frames, cfg.block_frames
    assert positions.tolist() == list(range(1, C + B + 1)) + [0]
    assert torch.equal(x[:, :, :C], torch.zeros_like(ctx))  # routed: the context's x carries nothing
    v_train = model.dit(x, t, w.add, tokens, pooled, w.route, w.positions, w.mask)
    assert torch.equal(v_train, v_stream)


def test_context_dropout_statistics() -> None:
    g = torch.Generator().manual_seed(0)
    K, B, n = 4, 3, 20000
    keep = context_dropout(n, K, B, 0.2, 0.3, g)[:, 0, ::B]  # one column per block, oldest first
    dropped = (keep == 0).sum(1)
    assert torch.all(keep[:, 1:] >= keep[:, :-1])  # only the OLDEST blocks are ever zeroed
    assert abs((dropped == 0).float().mean() - 0.5) < 0.015
    assert abs((dropped == K).float().mean() - (0.2 + 0.3 / K)) < 0.015  # full, or partial with k = K
    for k in range(1, K):
        assert abs((dropped == k).float().mean() - 0.3 / K) < 0.01  # k ~ U{1..K}
    cfg = ModelConfig.tiny()
    train_cfg = TrainSettings(context_dropout=0.1, text_dropout=0.1)
    d = draw("lmdm", cfg, n, 0, train_cfg, g)
    assert abs(d.context_present.mean() - 0.9) < 0.01 and abs(d.text_keep.float().mean() - 0.9) < 0.01
    # dropped context keeps its mask; a CFG-dropped context loses mask and latent together
    ctx = torch.randn(2, cfg.latent_dim, cfg.context_frames)
    w = lmdm_window("block_causal", ctx, cfg, keep=torch.zeros(2, 1, cfg.context_frames), present=torch.tensor([1.0, 0.0])[:, None, None])
    C = cfg.context_frames
    assert torch.all(w.add[0, 0, :C] == 1) and torch.all(w.add[0, 1:, :C] == 0)
    assert torch.all(w.add[1, :, :] == 0) and torch.all(w.add[:, :, C:] == 0)


def test_timestep_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    t = sample_timesteps(64, "uniform", g)
    assert sorted((t * 64).floor().long().tolist()) == list(range(64))  # one draw per stratum
    ln = sample_timesteps(20000, "logit_normal", g)
    assert abs(ln.median() - 0.5) < 0.02 and 0 < ln.min() and ln.max() < 1
    assert sample_timesteps(20000, "uniform", g, shift=1.0).mean() > 0.6


def _overfit(stage: str, regime: str) -> tuple[float, float]:
    torch.manual_seed(0)
    cfg = ModelConfig.tiny()
    model = build_model(cfg, seed=0)
    dit, text = model.dit.train(), model.text.train()
    g = torch.Generator().manual_seed(0)
    frames = cfg.window_frames
    latents = torch.randn(4, cfg.latent_dim, frames, generator=g).cumsum(2) / 4  # smooth-ish, like music latents
    captions = ["acid techno", "ambient pads", "bossa nova", "dub"]
    d = draw(stage, cfg, 4, frames, TrainSettings(text_dropout=0.0, context_dropout=0.0, context_drop_full=0.0, context_drop_partial=0.0), g)
    opt = torch.optim.AdamW([*dit.parameters(), *text.parameters()], lr=3e-3)
    losses = []
    for _ in range(40):
        loss = step_loss(stage, regime, dit, text, latents, captions, d)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses[0], min(losses[-5:])


@pytest.mark.parametrize("stage, regime", [("base", "block_causal"), ("lmdm", "block_causal"), ("lmdm", "encdec")])
def test_loss_falls_on_a_fixed_batch(stage: str, regime: str) -> None:
    first, last = _overfit(stage, regime)
    assert last < 0.5 * first, (first, last)


def test_lmdm_loss_sees_only_the_target_block() -> None:
    cfg = ModelConfig.tiny()
    model = build_model(cfg, seed=0)
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(2, cfg.latent_dim, cfg.window_frames, generator=g)
    d = draw("lmdm", cfg, 2, 0, TrainSettings(), g)
    assert d.noise.shape == (2, cfg.latent_dim, cfg.block_frames)
    loss = step_loss("lmdm", "encdec", model.dit, model.text, latents, ["a", "b"], d)
    loss.backward()
    # the noisy input is routed out on the context: its x never reaches the loss
    assert model.dit.to_input_add.weight.grad.abs().sum() > 0


def test_a_model_trained_on_several_block_lengths_draws_each_and_keeps_one_length_runs_as_they_were(latents, base_run, tmp_path) -> None:
    """train with model.block_choices: each step's geometry is drawn from all of the model's (and
    the loss sees that geometry's target block); without choices no draw is made at all."""
    one = ModelConfig.tiny()
    rng = np.random.default_rng(3)
    assert step_geometry("lmdm", one, rng) is one and rng.integers(1 << 30) == np.random.default_rng(3).integers(1 << 30)
    two = ModelConfig.tiny(block_choices=((4, 6),))
    drawn = [step_geometry("lmdm", two, rng) for _ in range(200)]
    assert {(g.block_frames, g.context_blocks) for g in drawn} == {(8, 3), (4, 6)}
    assert 70 < sum(g.block_frames == 4 for g in drawn) < 130 and step_geometry("base", two, rng) is two
    short = two.reblocked(4)
    model = build_model(two, seed=0)
    g = torch.Generator().manual_seed(0)
    d = draw("lmdm", short, 2, 0, TrainSettings(), g)
    assert d.noise.shape == (2, two.latent_dim, 4)
    latents_ = torch.randn(2, two.latent_dim, short.window_frames, generator=g)
    assert torch.isfinite(step_loss("lmdm", "block_causal", model.dit, model.text, latents_, ["a", "b"], d, config=short))
    # a run: the checkpoint carries the choices, and a session plays either length
    r = recipe("lmdm_block_causal.toml", latents, tmp_path / "two", f"train.init='{base_run}'", "model.block_choices=[[4, 6]]", "train.steps=3")
    result = train(r, log=lambda s: None, progress=False)
    loaded = load_model(result.checkpoint)
    assert loaded.config.block_choices == ((4, 6),)
    assert lmdm.LiveSession(loaded, prompt="dub", steps=2, block_frames=4).next_block().shape == (4 * loaded.config.hop, 1)


def test_config_reblocked_round_trips_and_refuses_other_lengths() -> None:
    c = ModelConfig.tiny(block_choices=((4, 6), (12, 2)))
    assert c.geometries == ((8, 3), (4, 6), (12, 2))
    s = c.reblocked(4)
    assert (s.block_frames, s.context_blocks, s.block_choices) == (4, 6, ((8, 3), (12, 2)))
    assert s.reblocked(8) == c and c.reblocked(8) == c
    assert ModelConfig.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match="not 5"):
        c.reblocked(5)
    with pytest.raises(ValueError, match="distinct block lengths other than block_frames"):
        ModelConfig.tiny(block_choices=((8, 3),))


# ----------------------------------------------------------------------------------------------
# Runs: determinism, resume after kill, checkpoints


def test_same_seed_same_weights(latents, tmp_path) -> None:
    a = train(recipe("base.toml", latents, tmp_path / "a", "train.steps=6"), log=lambda s: None, progress=False)
    train(recipe("base.toml", latents, tmp_path / "b", "train.steps=6"), log=lambda s: None, progress=False)
    train(recipe("base.toml", latents, tmp_path / "c", "train.steps=6", "train.seed=1"), log=lambda s: None, progress=False)
    assert a.step == 6 and np.isfinite(a.loss)
    assert same_weights(weights(tmp_path / "a"), weights(tmp_path / "b"))
    assert not same_weights(weights(tmp_path / "a"), weights(tmp_path / "c"))
    with pytest.raises(ValueError, match="--resume"):
        train(recipe("base.toml", latents, tmp_path / "a", "train.steps=6"), log=lambda s: None, progress=False)


def test_resume_after_kill_equals_an_uninterrupted_run(latents, tmp_path) -> None:
    # the same thread count in every run (tiny recipes: 1): CPU matmuls may sum in another order with another count
    long = ["train.steps=100000", "log.save_every=1", "log.keep=2", "log.every=1000"]
    sets = [f"data.latents='{latents}'", f"train.out='{tmp_path / 'killed'}'", *long]
    cmd = [sys.executable, "-m", "lmdm.train", "base", "--recipe", str(TINY / "base.toml"), "--quiet"]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            found = step_dirs(tmp_path / "killed")
            if found and int(found[-1].name.split("-")[1]) >= 3:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    k = int(step_dirs(tmp_path / "killed")[-1].name.split("-")[1])
    end = k + 3
    resumed = train(recipe("base.toml", latents, tmp_path / "killed", *long, f"train.stop_at={end}"), resume=True, log=lambda s: None, progress=False)
    straight = train(recipe("base.toml", latents, tmp_path / "straight", *long, f"train.stop_at={end}", "log.save_every=1000"), log=lambda s: None, progress=False)
    assert resumed.step == straight.step == end
    assert same_weights(weights(tmp_path / "killed"), weights(tmp_path / "straight"))


def test_lmdm_stage_from_base_checkpoint_with_preview(latents, base_run, tmp_path) -> None:
    out = tmp_path / "lmdm"
    r = recipe("lmdm_block_causal.toml", latents, out, f"train.init='{base_run}'", "train.steps=4", "log.sample_every=4")
    result = train(r, log=lambda s: None, progress=False)
    doc = json.loads((result.checkpoint / "config.json").read_text())
    assert doc["stage"] == "lmdm" and doc["regime"] == "block_causal" and doc["step"] == 4
    assert doc["recipe"]["train"]["init"] == str(base_run) and doc["codec"]["kind"] == "placeholder"
    assert {p.name for p in result.checkpoint.iterdir()} == {"config.json", "model.safetensors", "train_state.safetensors"}
    names = load_tensors(result.checkpoint / "model.safetensors")[0].keys()
    assert all(n.startswith(("dit.", "text.")) for n in names) and any(n.startswith("text.") for n in names)
    audio, rate = sf.read(out / "samples" / "step-0000004.wav")
    assert rate == 16000 and len(audio) == 16000  # log.sample_seconds = 1 in the tiny recipe
    # the fine-tune started from the base weights, not from scratch
    base = weights(base_run)
    fresh = train(recipe("lmdm_encdec.toml", latents, tmp_path / "e", f"train.init='{base_run}'", "train.steps=1", "train.lr=0"), log=lambda s: None, progress=False)
    assert same_weights(base, load_tensors(fresh.checkpoint / "model.safetensors")[0])


def _session_audio(model) -> np.ndarray:
    return lmdm.LiveSession(model, prompt="warm house chords", steps=2, seed=5).render(1.0)


def test_checkpoint_round_trip_gives_the_same_stream(latents, base_run, tmp_path) -> None:
    model = build_model(ModelConfig.tiny(), seed=4)
    save_model(model, tmp_path / "m", stage="base")
    loaded = load_model(tmp_path / "m")
    assert np.array_equal(_session_audio(model), _session_audio(loaded))
    assert loaded.config == model.config
    # a training run loads as its latest checkpoint, and `lmdm train export` keeps it identical
    assert train_cli(["export", str(base_run), "--out", str(tmp_path / "exported")]) == 0
    assert not (tmp_path / "exported" / "train_state.safetensors").exists()
    assert np.array_equal(_session_audio(load_model(base_run)), _session_audio(load_model(tmp_path / "exported")))
    assert lmdm.load_model is load_model


def test_round_trip_with_a_conv_codec_copies_the_codec(tmp_path) -> None:
    from lmdm.codec.conv import ConvCodec, ConvCodecConfig

    torch.manual_seed(0)
    codec = ConvCodec(ConvCodecConfig(latent_dim=LATENT_DIM, width=16, latent_width=16, frame_units=0, latent_units=0)).eval()
    model = build_model(ModelConfig.tiny(), seed=1, codec=codec)
    save_model(model, tmp_path / "m")
    assert (tmp_path / "m" / "codec.safetensors").exists()
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded.codec, ConvCodec)
    assert np.array_equal(_session_audio(model), _session_audio(loaded))
    # --half: weight matrices stored as float16, about half the bytes, loaded as float32, close to the original
    save_model(model, tmp_path / "h", half=True)
    size = lambda d: sum(f.stat().st_size for f in d.glob("*.safetensors"))  # noqa: E731
    assert size(tmp_path / "h") < 0.6 * size(tmp_path / "m")
    half = load_model(tmp_path / "h")
    assert all(p.dtype == torch.float32 for p in half.dit.parameters()) and half.codec.encoder is not None
    a, b = _session_audio(model), _session_audio(half)
    assert np.abs(a - b).max() <= 0.02 * np.abs(a).max() + 1e-6


def test_a_codec_overwritten_after_encoding_is_refused(latents, tmp_path, capsys) -> None:
    """Latents record the codec's weights fingerprint; a model trained on them refuses a codec directory changed since."""
    from lmdm.checkpoint import config_document, write_directory, model_tensors
    from lmdm.codec.checkpoint import save_codec, weights_fingerprint
    from lmdm.codec.conv import ConvCodec, ConvCodecConfig

    config = ConvCodecConfig(latent_dim=LATENT_DIM, width=16, latent_width=16, frame_units=0, latent_units=0)
    torch.manual_seed(0)
    save_codec(ConvCodec(config).eval(), tmp_path / "codec")
    corpus = json.loads((latents / "latents.json").read_text())["corpus"]
    out = tmp_path / "latents"
    encode_corpus(corpus, str(tmp_path / "codec"), out, latent_dim=LATENT_DIM, progress=False, log=lambda s: None)
    reference = json.loads((out / "latents.json").read_text())["codec"]
    assert reference["fingerprint"] == weights_fingerprint(tmp_path / "codec")
    assert isinstance(LatentSet(out, "all").codec(), ConvCodec)
    # a checkpoint trained on them carries the reference, as the training loop writes it
    model = build_model(ModelConfig.tiny(), seed=1)
    doc = config_document(model.config, reference, buckets=model.text.buckets, stage="base")
    write_directory(tmp_path / "run", {"model.safetensors": model_tensors(model.dit, model.text), "config.json": doc})
    assert isinstance(load_model(tmp_path / "run").codec, ConvCodec)
    # the codec directory is retrained in place: same config, other weights
    torch.manual_seed(1)
    save_codec(ConvCodec(config).eval(), tmp_path / "codec")
    for opening in (lambda: LatentSet(out, "all").codec(), lambda: load_model(tmp_path / "run")):
        with pytest.raises(CheckpointError, match="not the ones it was made with") as e:
            opening()
        assert "\n" not in str(e.value)
    capsys.readouterr()
    assert train_cli(["export", str(tmp_path / "run"), "--out", str(tmp_path / "exported")]) != 0
    assert "not the ones it was made with" in capsys.readouterr().err
    assert not (tmp_path / "exported").exists()
    # an exported model carries the fingerprint of its own copy, and a damaged copy is caught
    torch.manual_seed(0)
    save_codec(ConvCodec(config).eval(), tmp_path / "codec")
    exported = save_model(load_model(tmp_path / "run"), tmp_path / "exported", half=True)
    assert json.loads((exported / "config.json").read_text())["codec"]["fingerprint"] == weights_fingerprint(exported)
    tensors, _ = load_tensors(exported / "codec.safetensors")
    save_tensors(exported / "codec.safetensors", {k: v * 1.01 for k, v in tensors.items()})
    with pytest.raises(CheckpointError, match="not the ones"):
        load_model(exported)
    # latents from before fingerprints resume, and keep claiming none
    meta = json.loads((out / "latents.json").read_text())
    del meta["codec"]["fingerprint"]
    (out / "latents.json").write_text(json.dumps(meta))
    encode_corpus(corpus, str(tmp_path / "codec"), out, latent_dim=LATENT_DIM, progress=False, log=lambda s: None)
    assert "fingerprint" not in json.loads((out / "latents.json").read_text())["codec"]


def _one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_load_model_errors_are_clear(tmp_path, monkeypatch) -> None:
    good = save_model(build_model(ModelConfig.tiny(), seed=0), tmp_path / "good")

    def copy(name: str) -> Path:
        import shutil

        return Path(shutil.copytree(good, tmp_path / name))

    with pytest.raises(FileNotFoundError) as e:
        load_model(tmp_path / "nowhere")
    assert "does not exist" in _one_line(e)
    d = copy("noconfig")
    (d / "config.json").unlink()
    with pytest.raises(CheckpointError) as e:
        load_model(d)
    assert "config.json is missing" in _one_line(e)

    d = copy("truncated")
    raw = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError) as e:
        load_model(d)
    assert "corrupt" in _one_line(e) and "truncated" in _one_line(e)
    d = copy("badheader")
    (d / "model.safetensors").write_bytes(b"\xff" * 8 + raw[8:])
    with pytest.raises(CheckpointError) as e:
        load_model(d)
    assert "corrupt" in _one_line(e)
    d = copy("badjson")
    (d / "config.json").write_text("{ not json")
    with pytest.raises(CheckpointError) as e:
        load_model(d)
    assert "not valid JSON" in _one_line(e)

    d = copy("mismatch")
    doc = json.loads((d / "config.json").read_text())
    doc["model"]["depth"] = 3
    doc["model"]["width"] = 32
    (d / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError) as e:
        load_model(d)
    message = _one_line(e)
    assert "missing dit.layers.2." in message and "wrong shape dit." in message
    d = copy("extra")
    tensors = load_tensors(d / "model.safetensors")[0]
    tensors["dit.surprise"] = torch.zeros(2)
    save_tensors(d / "model.safetensors", tensors)
    with pytest.raises(CheckpointError) as e:
        load_model(d)
    assert "unexpected dit.surprise" in _one_line(e)

    d = copy("pickled")
    torch.save(build_model(ModelConfig.tiny()).dit.state_dict(), d / "model.safetensors")
    with pytest.raises(CheckpointError) as e:
        load_model(d)
    assert "pickle" in _one_line(e)
    (tmp_path / "weights.pt").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError) as e:
        load_model(tmp_path / "weights.pt")
    assert "pickle" in _one_line(e)
    only_pickle = tmp_path / "only_pickle"
    only_pickle.mkdir()
    (only_pickle / "model.ckpt").write_bytes(pickle.dumps([1, 2], protocol=4))
    with pytest.raises(CheckpointError) as e:
        load_model(only_pickle)
    assert "pickle" in _one_line(e)

    monkeypatch.setattr("lmdm.loading.DEFAULT_DIR", tmp_path / "empty_weights")
    with pytest.raises(FileNotFoundError) as e:
        load_model()
    assert "no bundled default model yet" in _one_line(e)


# ----------------------------------------------------------------------------------------------
# Data parallel: 2 processes on gloo


def test_two_process_gloo_run_averages_gradients(latents, tmp_path) -> None:
    out = tmp_path / "ddp"
    done = torchrun(["base", "--recipe", str(TINY / "base.toml"), "--set", f"data.latents='{latents}'", "--out", str(out),
                     "--steps", "4", "--quiet"], out)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((out / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2] and [r["step"] for r in ranks] == [4, 4]
    assert ranks[0]["first_loss"] != ranks[1]["first_loss"]  # different data on each rank...
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]  # ...yet bit-identical replicas
    saved = weights(out)
    doc = json.loads((step_dirs(out)[-1] / "config.json").read_text())
    assert doc["processes"] == 2 and doc["step"] == 4
    state = load_tensors(step_dirs(out)[-1] / "train_state.safetensors")[0]
    assert "rng.torch.0" in state and "rng.torch.1" in state
    assert all(torch.isfinite(v).all() for v in saved.values())


# ----------------------------------------------------------------------------------------------
# Sketch inputs (melody / rhythm / loudness as per-frame additive channels)

SKETCH_SET = 'model.extra_add_inputs=[["melody", 13], ["rhythm", 2], ["loudness", 2]]'


def test_sketch_features_encode_and_drop() -> None:
    from lmdm.conditioning.sketch import SKETCH_DIM, sketch_features

    melody = torch.tensor([[60.0, 64.0, 0.0, 71.0]])  # C4, E4, rest, B4
    onsets = torch.tensor([[1.0, 0.0, 0.0, 0.5]])
    db = torch.tensor([[0.0, -30.0, -60.0, -90.0]])
    f = sketch_features(melody, onsets, db, torch.ones(1, 3))
    assert f.shape == (1, SKETCH_DIM, 4)
    assert f[0, :12].argmax(0)[[0, 1, 3]].tolist() == [0, 4, 11] and f[0, :12, 2].sum() == 0  # a rest is no pitch class
    assert f[0, 12].tolist() == [1, 1, 1, 1] and f[0, 13].tolist() == [1.0, 0.0, 0.0, 0.5]
    assert torch.allclose(f[0, 15], torch.tensor([1.0, 0.5, 0.0, 0.0]))
    dropped = sketch_features(melody, onsets, db, torch.tensor([[1.0, 0.0, 1.0]]))
    assert dropped[0, 13:15].abs().sum() == 0 and torch.equal(dropped[0, :13], f[0, :13])


@pytest.mark.parametrize("stage", ["base", "lmdm"])
def test_sketch_channels_are_trained_on_the_target_only(latents, stage) -> None:
    from lmdm.train.objective import add_sketch, base_window

    config = ModelConfig.tiny(extra_add_inputs=[["melody", 13], ["rhythm", 2], ["loudness", 2]])
    data = LatentSet(latents, split="all")
    z, captions, ann = data.windows(2, config.window_frames, np.random.default_rng(0))
    assert set(ann) == {"melody", "onsets", "loudness_db", "beat_phase", "bar_phase"} and ann["loudness_db"].shape == (2, config.window_frames)
    present = torch.ones(2, 3)
    if stage == "base":
        w = add_sketch(base_window(2, config.window_frames, config), ann, present, config)
        assert w.add[:, 1 + config.latent_dim :].abs().sum(1).gt(0).all()  # loudness present -> every frame has a sketch
    else:
        C = config.context_frames
        w = add_sketch(lmdm_window("block_causal", z[:, :, :C], config), {k: a[:, C:] for k, a in ann.items()}, present, config)
        sketch = w.add[:, 1 + config.latent_dim :]
        assert sketch[:, :, :C].abs().sum() == 0 and sketch[:, :, C:].abs().sum(1).gt(0).all()
    with pytest.raises(ValueError, match="annotations"):
        add_sketch(base_window(2, 8, config), {}, present, config)


def test_a_model_with_sketch_inputs_learns_to_use_them(latents, tmp_path) -> None:
    run = tmp_path / "sketch-base"
    train(recipe("base.toml", latents, run, SKETCH_SET, "train.steps=12"), progress=False)
    model = load_model(run)
    assert model.config.extra_add_inputs == (("melody", 13), ("rhythm", 2), ("loudness", 2))
    w = model.dit.to_input_add.weight  # [W, 1 + D + 17]: the sketch columns got gradient, the context ones none (base)
    start = 1 + model.config.latent_dim
    initial = build_model(model.config, seed=0).dit.to_input_add.weight
    assert not torch.allclose(w[:, start:], initial[:, start:])
    session = lmdm.LiveSession(model, prompt="techno", steps=2)
    assert np.isfinite(session.render(seconds=1.0)).all()  # no sketch given: all zeros, as trained when dropped


def test_beat_sketch_windows_hear_the_beat_grid_as_their_rhythm_and_nothing_else_moves(latents) -> None:
    from lmdm.conditioning.clock import phase_onsets
    from lmdm.train.objective import beat_rhythm

    config = ModelConfig.tiny(extra_add_inputs=[["melody", 13], ["rhythm", 2], ["loudness", 2]])
    before = draw("lmdm", config, 64, 0, TrainSettings(), torch.Generator().manual_seed(5))
    after = draw("lmdm", config, 64, 0, TrainSettings(beat_sketch=0.5), torch.Generator().manual_seed(5))
    for name in ("noise", "t", "text_keep", "context_keep", "context_present", "sketch_present"):
        assert torch.equal(getattr(before, name), getattr(after, name)), name  # drawn last
    assert before.beat_rhythm is None and 10 < int(after.beat_rhythm.sum()) < 54
    z, _, ann = LatentSet(latents, split="all").windows(4, config.window_frames, np.random.default_rng(0))
    beat = torch.tensor([True, False, True, False])
    out = beat_rhythm(ann, beat)
    grid = phase_onsets(ann["beat_phase"])
    assert torch.equal(out["onsets"][beat], grid[beat]) and torch.equal(out["onsets"][~beat], ann["onsets"][~beat])
    assert not torch.equal(grid, ann["onsets"]) and torch.equal(out["melody"], ann["melody"])
    assert beat_rhythm(ann, None) is ann
    with pytest.raises(ValueError, match="beat_phase"):
        beat_rhythm({"onsets": ann["onsets"]}, beat)


def test_short_captions_replace_the_drawn_share_and_share_zero_draws_nothing() -> None:
    from lmdm.train.loop import shortened

    captions = ["Brooding techno with synth stabs at 137 beats per minute"] * 400
    rng = np.random.default_rng(3)
    assert shortened(captions, 0.0, rng) is captions and rng.random() == np.random.default_rng(3).random()
    short = shortened(captions, 0.5, np.random.default_rng(3))
    changed = sum(c != captions[0] for c in short)
    assert 150 < changed < 250 and all("techno" in c for c in short)


def test_a_sketch_model_trains_with_beat_sketches_and_short_captions(latents, tmp_path) -> None:
    run = tmp_path / "beat"
    train(recipe("base.toml", latents, tmp_path / "b", SKETCH_SET, "train.steps=4"), progress=False)
    train(recipe("lmdm_block_causal.toml", latents, run, SKETCH_SET, f"train.init='{tmp_path / 'b'}'", "train.steps=4",
                 "train.beat_sketch=0.5", "train.short_captions=0.5"), progress=False)
    session = lmdm.LiveSession(load_model(run), prompt="techno at 100 bpm", steps=2)
    assert np.isfinite(session.render(seconds=1.0)).all()


# ----------------------------------------------------------------------------------------------
# Jamming: the accomp input (a player's stem) and accompaniment targets (the other stems' mix)

JAM_SET = f'model.extra_add_inputs=[["accomp", {1 + LATENT_DIM}]]'


@pytest.fixture(scope="module")
def stem_latents(latents, tmp_path_factory) -> Path:
    corpus = json.loads((latents / "latents.json").read_text())["corpus"]
    out = tmp_path_factory.mktemp("stems") / "latents"
    encode_corpus(corpus, "placeholder", out, latent_dim=LATENT_DIM, progress=False, log=lambda s: None, stems=True)
    return out


def test_stems_are_encoded_solo_and_as_the_rest(stem_latents) -> None:
    from lmdm.corpus.score import STEM_NAMES

    record = read_index(stem_latents)[0]
    tensors, _ = load_tensors(stem_latents / f"{record['id']}.safetensors")
    reader = CorpusReader(json.loads((stem_latents / "latents.json").read_text())["corpus"])
    stems = torch.from_numpy(reader.load_stems(record["id"]))
    codec = PlaceholderCodec(16000, 640, LATENT_DIM)
    for i, name in enumerate(STEM_NAMES):
        assert torch.allclose(tensors[f"stem.{name}"], codec.encode(stems[i][None, None])[0], atol=1e-5)
        assert torch.allclose(tensors[f"rest.{name}"], codec.encode((stems.sum(0) - stems[i])[None, None])[0], atol=1e-5)
    assert LatentSet(stem_latents, "all").has_stems


def test_jamming_windows_swap_in_the_accompaniment_and_hide_the_unheard(stem_latents) -> None:
    from lmdm.train.objective import apply_jam, add_accomp

    config = ModelConfig.tiny(extra_add_inputs=[["accomp", 1 + LATENT_DIM]])
    settings = TrainSettings(jam_prob=0.5, accomp_drop_partial=0.5)
    data = LatentSet(stem_latents, "all")
    assert data.has_stems
    z, captions, ann = data.windows(8, config.window_frames, np.random.default_rng(0))
    draws = draw("lmdm", config, 8, 0, settings, torch.Generator().manual_seed(3))
    assert draws.jam.any() and not draws.jam.all()
    swapped, accomp = apply_jam(z, ann, draws)
    rows = torch.arange(8)
    assert torch.equal(swapped[~draws.jam], z[~draws.jam])
    assert torch.equal(swapped[draws.jam], ann["stems"][rows, 1, draws.jam_stem][draws.jam])
    C, B = config.context_frames, config.block_frames
    assert set(draws.accomp_cutoff.tolist()) <= {C - B, C - 2 * B}
    heard = accomp[:, 0]  # [b, n]
    assert heard[~draws.jam].sum() == 0 and heard[:, C - B :].sum() == 0  # nothing of the last context block or the target
    for b in torch.nonzero(draws.jam)[:, 0].tolist():
        s, c = int(draws.accomp_start[b]), int(draws.accomp_cutoff[b])
        assert heard[b, s:c].eq(1).all() and heard[b, :s].sum() == 0
        assert torch.equal(accomp[b, 1:, s:c], ann["stems"][b, 0, draws.jam_stem[b], :, s:c])
    w = add_accomp(lmdm_window("block_causal", swapped[:, :, :C], config), accomp, config)
    assert torch.equal(w.add[:, config.add_slice("accomp")], accomp)
    with pytest.raises(ValueError, match="--stems"):
        apply_jam(z, {k: v for k, v in ann.items() if k != "stems"}, draws)


def test_jam_context_drop_blinds_only_jamming_windows_and_leaves_other_draws_alone() -> None:
    config = ModelConfig.tiny(extra_add_inputs=[["accomp", 1 + LATENT_DIM]])
    before = draw("lmdm", config, 64, 0, TrainSettings(jam_prob=0.5), torch.Generator().manual_seed(5))
    after = draw("lmdm", config, 64, 0, TrainSettings(jam_prob=0.5, jam_context_drop=0.6), torch.Generator().manual_seed(5))
    for name in ("noise", "t", "text_keep", "context_present", "jam", "jam_stem", "accomp_start", "accomp_cutoff"):
        assert torch.equal(getattr(before, name), getattr(after, name)), name  # drawn last: nothing else moves
    blind = (after.context_keep.sum(dim=(1, 2)) == 0) & (before.context_keep.sum(dim=(1, 2)) > 0)
    assert blind.any() and not blind[~after.jam].any()  # only jamming windows lose their context
    kept = ~blind
    assert torch.equal(after.context_keep[kept], before.context_keep[kept])
    with pytest.raises(ValueError):
        TrainSettings(jam_context_drop=1.5)


def test_the_player_loss_tells_whether_the_model_hears_the_player(stem_latents, latents) -> None:
    from lmdm.eval.sketch import player_information

    config = ModelConfig.tiny(extra_add_inputs=[["accomp", 1 + LATENT_DIM]])
    model = build_model(config, seed=0)
    r = player_information(model, str(stem_latents), batches=2, batch=4, split="all")
    for part in ("context_zeroed", "context_kept"):
        heard, silenced = r[part]["loss_player_heard"], r[part]["loss_player_silenced"]
        assert np.isfinite(heard) and np.isfinite(silenced) and heard != silenced  # random weights do read the input
    with torch.no_grad():
        model.dit.to_input_add.weight[:, config.add_slice("accomp")] = 0.0  # a model deaf to the player
    r = player_information(model, str(stem_latents), batches=2, batch=4, split="all")
    assert all(r[p]["loss_player_heard"] == r[p]["loss_player_silenced"] for p in ("context_zeroed", "context_kept"))
    with pytest.raises(ValueError, match="no accomp input"):
        player_information(build_model(ModelConfig.tiny(), seed=0), str(stem_latents), split="all")
    with pytest.raises(ValueError, match="no stem latents"):
        player_information(model, str(latents), split="all")


def test_a_jamming_model_trains_from_stem_latents(stem_latents, latents, tmp_path) -> None:
    run = tmp_path / "jam"
    train(recipe("base.toml", stem_latents, run, JAM_SET, "train.jam_prob=0.5", "train.steps=6"), progress=False, log=lambda s: None)
    model = load_model(run)
    assert model.config.add_slice("accomp") == slice(1 + LATENT_DIM, 2 + 2 * LATENT_DIM)
    with pytest.raises(ValueError, match="--stems"):
        train(recipe("base.toml", latents, tmp_path / "nostems", JAM_SET, "train.jam_prob=1.0", "train.steps=2"), progress=False, log=lambda s: None)


def test_stems_for_every_other_example_only(latents, tmp_path) -> None:
    from lmdm.train.objective import apply_jam

    corpus = json.loads((latents / "latents.json").read_text())["corpus"]
    encode_corpus(corpus, "placeholder", tmp_path / "half", latent_dim=LATENT_DIM, progress=False, log=lambda s: None, stems=2)
    data = LatentSet(tmp_path / "half", "all")
    assert data.has_stems and sum(s is None for s in data.stems) == 2  # ids 000000..000003: 0 and 2 have stems
    config = ModelConfig.tiny(extra_add_inputs=[["accomp", 1 + LATENT_DIM]])
    z, _, ann = data.windows(16, config.window_frames, np.random.default_rng(0))
    draws = draw("lmdm", config, 16, 0, TrainSettings(jam_prob=1.0), torch.Generator().manual_seed(0))
    swapped, accomp = apply_jam(z, ann, draws)
    without = ~ann["has_stems"]
    assert without.any() and torch.equal(swapped[without], z[without]) and accomp[without].abs().sum() == 0


def test_export_writes_the_caption_vocabulary_and_lmdm_vocab_shows_it(base_run, latents, tmp_path, capsys) -> None:
    from lmdm.cli import main as lmdm_main

    assert train_cli(["export", str(base_run), "--out", str(tmp_path / "m")]) == 0
    vocab = json.loads((tmp_path / "m" / "vocab.json").read_text())
    caption_words = set(" ".join(r["caption"].lower() for r in read_index(latents)).replace(",", " ").split())
    assert vocab and set(list(vocab)[:5]) <= caption_words | {w.strip(".") for w in caption_words}
    assert list(vocab.values()) == sorted(vocab.values(), reverse=True)
    capsys.readouterr()
    assert lmdm_main(["vocab", "--model", str(tmp_path / "m"), "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("3 words") and list(vocab)[0] in out
    assert lmdm_main(["vocab", "--model", str(tmp_path / "missing")]) == 2


def test_a_model_carries_the_sampler_steps_it_is_made_for(tmp_path) -> None:
    from lmdm.train.cli import main as train_main

    model = build_model(ModelConfig.tiny(), seed=0)
    assert model.steps == 8 and lmdm.LiveSession(model).stats.steps == 8
    save_model(model, tmp_path / "plain")
    assert "sampler_steps" not in json.loads((tmp_path / "plain" / "config.json").read_text())  # 8 is the default
    assert train_main(["export", str(tmp_path / "plain"), "--out", str(tmp_path / "arc"), "--steps", "4"]) == 0
    loaded = load_model(tmp_path / "arc")
    assert loaded.steps == 4 and json.loads((tmp_path / "arc" / "config.json").read_text())["sampler_steps"] == 4
    assert lmdm.LiveSession(loaded).stats.steps == 4 and lmdm.LiveSession(loaded, steps=8).stats.steps == 8
    assert train_main(["export", str(tmp_path / "arc"), "--out", str(tmp_path / "again")]) == 0  # kept on a re-export
    assert load_model(tmp_path / "again").steps == 4
    assert train_main(["export", str(tmp_path / "arc"), "--out", str(tmp_path / "bad"), "--steps", "0"]) == 2
    doc = json.loads((tmp_path / "arc" / "config.json").read_text())
    (tmp_path / "arc" / "config.json").write_text(json.dumps({**doc, "sampler_steps": 2.5}))
    with pytest.raises(CheckpointError, match="sampler_steps must be a whole number"):
        load_model(tmp_path / "arc")


def test_a_model_carries_its_recommended_guidance(tmp_path) -> None:
    model = build_model(ModelConfig.tiny(), seed=0)
    assert model.guidance == 1.0 and lmdm.LiveSession(model).stats.cfg == 1.0
    model.guidance = 2.5
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.guidance == 2.5
    assert lmdm.LiveSession(loaded).stats.cfg == 2.5 and lmdm.LiveSession(loaded, cfg=1.0).stats.cfg == 1.0
    doc = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**doc, "guidance": "loud"}))
    with pytest.raises(CheckpointError, match="guidance must be a number"):
        load_model(tmp_path / "m")


def test_a_model_carries_how_much_its_guidance_pushes_towards_its_inputs(tmp_path) -> None:
    """guide_inputs: stored by save_model and `lmdm train export --guide-inputs`, read by load_model,
    LiveSession's default (an explicit value wins; out of 0..1 is one line); 0 is not written."""
    model = build_model(ModelConfig.tiny(), seed=0)
    assert model.guide_inputs == 0.0 and lmdm.LiveSession(model).guide_inputs == 0.0
    save_model(model, tmp_path / "plain")
    assert "guide_inputs" not in json.loads((tmp_path / "plain" / "config.json").read_text())
    assert train_cli(["export", str(tmp_path / "plain"), "--out", str(tmp_path / "m"), "--guide-inputs", "0.5"]) == 0
    loaded = load_model(tmp_path / "m")
    assert loaded.guide_inputs == 0.5 and loaded.reblocked(loaded.config.block_frames).guide_inputs == 0.5
    assert lmdm.LiveSession(loaded).guide_inputs == 0.5 and lmdm.LiveSession(loaded, guide_inputs=0).guide_inputs == 0.0
    with pytest.raises(ValueError, match="guide_inputs must be a number from 0 to 1, got 2"):
        lmdm.LiveSession(loaded, guide_inputs=2)
    assert train_cli(["export", str(tmp_path / "plain"), "--out", str(tmp_path / "bad"), "--guide-inputs", "1.5"]) == 2
