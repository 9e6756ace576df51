"""Train a ConvCodec on a directory of audio (or on arrays, or on synthetic audio).

    python -m lmdm.train.codec --data DIR --out runs/codec --steps 20000
    python -m lmdm.train.codec --synthetic 200 --out runs/codec-syn --steps 600 --max-minutes 5

Loss = multi-resolution STFT (spectral convergence + log magnitude) + time-domain L1
     + chroma_weight x chroma distance (pitch classes, lmdm.codec.metrics.chroma_distance)
     + phase_weight x the decoder's per-bin phase advance against the input's (its frequencies,
       lmdm.codec.metrics.phase_advance_distance)
     + a small fixed-variance KL on the raw latents (training adds N(0, latent_noise^2) to them).
AdamW, linear warm-up then cosine decay, gradient clipping. The output directory holds
codec.json + codec.safetensors (a loadable codec, latent stats fitted) and optimizer.safetensors +
train_state.json (to resume; re-running the same command continues where it stopped).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs
import numpy as np
import torch

from lmdm.codec.audio import load_audio_dir, load_corpus_split
from lmdm.codec.checkpoint import load_codec, save_codec
from lmdm.codec.conv import ConvCodec, ConvCodecConfig, latent_penalty
from lmdm.codec.metrics import chroma_distance, multires_stft_terms, phase_advance_distance
from lmdm.codec.synthetic import synthetic_clips
from lmdm.tensorfile import TensorFileError, load_tensors, save_tensors

OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "train_state.json"
LOG_FILE = "log.jsonl"
_CLI_TYPES = {"int": int, "float": float}  # config fields that get a command-line flag


@attrs.frozen
class TrainCodecConfig:
    batch_size: int = 8
    segment_seconds: float = 1.0  # rounded to whole latent frames
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1  # cosine decays to lr * this at the last step
    grad_clip: float = 1.0
    l1_weight: float = 1.0
    kl_weight: float = 1e-3
    chroma_weight: float = 0.0  # > 0 makes the codec keep pitch classes (melody sketches need them: docs/codec.md)
    phase_weight: float = 0.0  # > 0 teaches the decoder's bins the input's frequencies (docs/codec.md)
    log_every: int = 20
    save_every: int = 200
    seed: int = 0


# ----------------------------------------------------------------------------------------------
# Small pure pieces


def random_segments(clips: Sequence[np.ndarray], batch: int, length: int, rng: np.random.Generator,
                    min_rms: float = 1e-3, tries: int = 8) -> torch.Tensor:
    """Random crops (zero-padded if a clip is short) with a random gain of -12..+6 dB, peak <= 1 -> [batch, 1, length].

    A crop quieter than `min_rms` (-60 dB) is redrawn up to `tries` times: mostly-silent batches
    teach the decoder that silence is the safe answer.
    """
    out = np.zeros((batch, 1, length), np.float32)
    for b in range(batch):
        for _ in range(tries):
            clip = clips[rng.integers(len(clips))]
            start = rng.integers(max(1, len(clip) - length + 1))
            piece = clip[start : start + length]
            if np.sqrt(np.mean(piece**2)) >= min_rms:
                break
        gain = 10 ** (rng.uniform(-12, 6) / 20)
        out[b, 0, : len(piece)] = piece * min(gain, 1 / (np.abs(piece).max() + 1e-9))
    return torch.from_numpy(out)


def split_holdout(clips: Sequence[np.ndarray], every: int = 10) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every `every`-th clip (counting from the last) is held out; with fewer than 2 clips nothing is."""
    if len(clips) < 2:
        return list(clips), list(clips)
    held = {i for i in range(len(clips) - 1, -1, -every)}
    return [c for i, c in enumerate(clips) if i not in held], [c for i, c in enumerate(clips) if i in held]


def learning_rate(step: int, steps: int, cfg: TrainCodecConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, steps - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def codec_loss(codec: ConvCodec, audio: torch.Tensor, cfg: TrainCodecConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """audio [B, 1, T] -> (total loss, its parts as floats)."""
    raw = codec.encode_raw(audio)  # [B, D, T / hop]
    noisy = raw + codec.config.latent_noise * torch.randn_like(raw)
    codec._check_latents(noisy)
    mag, phase = codec.decoder.frames(noisy)  # [B, F', T / frame_hop] each
    recon = codec.decoder.synthesise(mag, phase)  # [B, 1, T]
    sc, logmag = multires_stft_terms(audio, recon)
    l1 = (audio - recon).abs().mean()
    kl = latent_penalty(raw)
    total = sc + logmag + cfg.l1_weight * l1 + cfg.kl_weight * kl
    parts = {"loss": total, "sc": sc, "logmag": logmag, "l1": l1, "kl": kl}
    if cfg.chroma_weight > 0:
        chroma = chroma_distance(audio, recon, codec.sample_rate)
        total = total + cfg.chroma_weight * chroma
        parts.update(loss=total, chroma=chroma)
    if cfg.phase_weight > 0:
        c = codec.config
        advance = phase_advance_distance(audio[:, 0], phase, c.synthesis_fft, c.frame_hop)
        total = total + cfg.phase_weight * advance
        parts.update(loss=total, phase=advance)
    return total, {k: v.item() for k, v in parts.items()}


# ----------------------------------------------------------------------------------------------
# Checkpoints: the codec itself (loadable by load_codec) plus optimizer and loop state


def save_checkpoint(out: Path, codec: ConvCodec, opt: torch.optim.Optimizer, step: int, cfg: TrainCodecConfig,
                    rng: np.random.Generator, stats_audio: torch.Tensor) -> None:
    with torch.no_grad():
        codec.set_latent_stats(codec.encode_raw(stats_audio))
    save_codec(codec, out, info={"step": step, "train": attrs.asdict(cfg)})
    names = {id(p): n for n, p in codec.named_parameters()}
    tensors = {"rng.torch": torch.get_rng_state()}
    for p, state in opt.state.items():
        for key, value in state.items():
            tensors[f"{names[id(p)]}.{key}"] = torch.as_tensor(value)
    save_tensors(out / OPTIMIZER_FILE, tensors)
    doc = {"step": step, "train": attrs.asdict(cfg), "rng": rng.bit_generator.state}
    (out / STATE_FILE).write_text(json.dumps(doc, indent=2) + "\n")


def load_checkpoint(out: Path, codec: ConvCodec, opt: torch.optim.Optimizer, rng: np.random.Generator) -> int:
    """Restore weights, optimizer moments, RNGs from `out` -> the step to continue from."""
    saved = load_codec(out)
    if saved.config != codec.config:
        raise TensorFileError(f"{out} holds a codec with config {saved.config}, not {codec.config}; use another --out")
    codec.load_state_dict(saved.state_dict())
    tensors, _ = load_tensors(out / OPTIMIZER_FILE)
    torch.set_rng_state(tensors.pop("rng.torch"))
    state = {}
    trainable = [(n, p) for n, p in codec.named_parameters() if p.requires_grad]  # the optimizer's param order
    for i, (name, p) in enumerate(trainable):
        keys = [k for k in tensors if k.rsplit(".", 1)[0] == name]
        if keys:
            state[i] = {k.rsplit(".", 1)[1]: tensors[k] for k in keys}
    opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})
    doc = json.loads((out / STATE_FILE).read_text())
    rng.bit_generator.state = doc["rng"]
    return int(doc["step"])


def warm_start(codec: ConvCodec, source: str | Path) -> list[str]:
    """Copy another codec's weights into `codec` -> the names of the tensors copied.

    Tensors of the same name and shape are copied. A decoder head that grew (a source without the
    phase integrator, a target with it) keeps the source's rows, and its new rows stay as initialised
    (increments of 0: the source's sound). Anything else that differs is an error, not a silent skip.
    """
    src = load_codec(source).state_dict()
    dst = codec.state_dict()
    copied = []
    with torch.no_grad():
        for name, value in src.items():
            if name not in dst:
                raise TensorFileError(f"{source} has {name}, which a {codec.config} codec does not")
            target = dst[name]
            if target.shape == value.shape:
                target.copy_(value)
            elif name.startswith("decoder.head.") and target.shape[1:] == value.shape[1:] and target.shape[0] > value.shape[0]:
                target[: value.shape[0]].copy_(value)
            else:
                raise TensorFileError(f"{source}: {name} is {tuple(value.shape)}, here {tuple(target.shape)}")
            copied.append(name)
    return copied


# ----------------------------------------------------------------------------------------------
# The loop


def train_codec(
    data: str | Path | Sequence[np.ndarray],
    config: ConvCodecConfig = ConvCodecConfig(),
    steps: int = 1000,
    out: str | Path | None = None,
    train: TrainCodecConfig = TrainCodecConfig(),
    max_seconds: float | None = None,
    resume: bool = True,
    log: Callable[[dict], None] = print,
    init: str | Path | None = None,
    stop_at: int | None = None,
) -> ConvCodec:
    """Train for `steps` optimizer steps (or until `max_seconds` of wall time) -> the trained codec.

    `data`: a directory of 16 kHz mono wav/flac (others are converted) or a list of float arrays.
    With `out`, checkpoints go there every `train.save_every` steps and at the end, and an existing
    checkpoint there is resumed (unless resume=False). `init`: a codec directory whose weights a new
    run starts from (`warm_start`); ignored when a checkpoint is resumed. `stop_at`: stop (and save)
    at this step of the `steps`-long schedule.
    """
    if isinstance(data, (str, Path)):
        clips = [audio for _, audio in load_audio_dir(data, config.sample_rate)]
    else:
        clips = [np.asarray(c, np.float32).reshape(-1) for c in data]
    train_clips, held_clips = split_holdout(clips)
    hop = config.hop
    length = max(1, round(train.segment_seconds * config.sample_rate / hop)) * hop
    stats_audio = random_segments(held_clips, 16, length, np.random.default_rng(train.seed + 1))

    torch.manual_seed(train.seed)
    rng = np.random.default_rng(train.seed)
    codec = ConvCodec(config)
    trainable = [p for p in codec.parameters() if p.requires_grad]  # the STFT bases are fixed
    opt = torch.optim.AdamW(trainable, lr=train.lr, betas=(0.9, 0.99), weight_decay=train.weight_decay)
    out = Path(out) if out is not None else None
    step = 0
    if out is not None and resume and (out / STATE_FILE).exists():
        step = load_checkpoint(out, codec, opt, rng)
        log({"resumed_from_step": step, "out": str(out)})
    elif init is not None:
        log({"init": str(init), "tensors_copied": len(warm_start(codec, init))})

    codec.train()
    start, last_log = time.perf_counter(), time.perf_counter()
    last = steps if stop_at is None else min(steps, stop_at)
    while step < last:
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, steps, train)
        audio = random_segments(train_clips, train.batch_size, length, rng)
        loss, parts = codec_loss(codec, audio, train)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable, train.grad_clip)
        opt.step()
        step += 1
        out_of_time = max_seconds is not None and time.perf_counter() - start > max_seconds
        if step % train.log_every == 0 or step == last or out_of_time:
            now = time.perf_counter()
            record = {"step": step, **{k: round(v, 5) for k, v in parts.items()}, "grad_norm": round(float(grad_norm), 3),
                      "lr": group["lr"], "s_per_step": round((now - last_log) / train.log_every, 3), "elapsed_s": round(now - start, 1)}
            last_log = now
            log(record)
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                with open(out / LOG_FILE, "a") as f:
                    f.write(json.dumps(record) + "\n")
        if out is not None and (step % train.save_every == 0 or step == last or out_of_time):
            save_checkpoint(out, codec, opt, step, train, rng, stats_audio)
        if out_of_time:
            log({"stopped": "max_seconds reached", "step": step})
            break
    codec.eval()
    with torch.no_grad():
        codec.set_latent_stats(codec.encode_raw(stats_audio))
    return codec


def refit_stats(out: str | Path, corpus: str | Path, crops: int = 64, seconds: float = 8.0, seed: int = 0) -> dict[str, float]:
    """Re-fit a trained codec's latent normalisation on crops of a corpus's train-split *mixes* (what the
    diffusion model is trained on), and save it in place. -> summary of the old and new statistics."""
    from lmdm.corpus.reader import CorpusReader

    codec = load_codec(out)
    reader = CorpusReader(corpus)
    entries = reader.select("train")
    rng = np.random.default_rng(seed)
    frames = max(1, round(seconds * reader.frame_rate))
    audio = []
    for _ in range(crops):
        entry = entries[int(rng.integers(len(entries)))]
        start = int(rng.integers(max(1, entry.frames - frames)))
        audio.append(reader.load_audio(entry, start, frames))
    batch = torch.from_numpy(np.stack(audio))[:, None, :]  # [crops, 1, T]
    old = (codec.latent_mean.clone(), codec.latent_std.clone())
    with torch.no_grad():
        codec.set_latent_stats(torch.cat([codec.encode_raw(b) for b in batch.split(8)]))
    info = json.loads((Path(out) / "codec.json").read_text()).get("info", {})
    save_codec(codec, out, info={**info, "latent_stats": f"refit on {crops} x {seconds:g} s train-split mixes of {corpus}"})
    return {"old_mean_abs": float(old[0].abs().mean()), "new_mean_abs": float(codec.latent_mean.abs().mean()),
            "old_std_mean": float(old[1].mean()), "new_std_mean": float(codec.latent_std.mean())}


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="directory of wav/flac files (16 kHz mono; others are converted; corpus stems split)")
    p.add_argument("--synthetic", type=int, metavar="N", default=0,
                   help="add N generated clips (lmdm.codec.synthetic: tones, plucks, noise, espeak-ng voices)")
    p.add_argument("--synthetic-seconds", type=float, default=4.0)
    p.add_argument("--out", required=True, help="checkpoint directory (resumed if it has one)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (the length of the LR schedule)")
    p.add_argument("--refit-stats", metavar="CORPUS", help="only re-fit the trained codec's latent normalisation on CORPUS mixes, then exit")
    p.add_argument("--max-minutes", type=float, default=None, help="stop (and save) after this much wall time")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--no-resume", action="store_true")
    codec_fields = [f for f in attrs.fields(ConvCodecConfig) if f.type in _CLI_TYPES]
    train_fields = [f for f in attrs.fields(TrainCodecConfig) if f.type in _CLI_TYPES]
    for f in codec_fields + train_fields:
        p.add_argument(f"--{f.name.replace('_', '-')}", type=_CLI_TYPES[f.type], default=f.default)
    p.add_argument("--phase-integrator", action="store_true", help="decoder with a running phase per bin (docs/codec.md)")
    p.add_argument("--init", metavar="DIR", help="start a new run from another codec's weights (see warm_start)")
    p.add_argument("--stop-at", type=int, metavar="STEP", help="stop (and save) at this step of the --steps schedule")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # subnormal floats in conv backward passes can slow a CPU step 10x or more
    codec_cfg = ConvCodecConfig(**{f.name: getattr(args, f.name) for f in codec_fields}, phase_integrator=args.phase_integrator)
    train_cfg = TrainCodecConfig(**{f.name: getattr(args, f.name) for f in train_fields})
    if args.refit_stats:
        print(json.dumps(refit_stats(args.out, args.refit_stats)), flush=True)
        return
    if args.steps is None:
        p.error("--steps is required for training")
    if not args.data and not args.synthetic:
        p.error("give --data DIR, --synthetic N, or both")
    data: list[np.ndarray] = []
    if args.data and (Path(args.data) / "corpus.json").exists():  # a corpus: its train split only, mixes + stems
        data = [audio for _, audio in load_corpus_split(args.data, codec_cfg.sample_rate, "train")]
    elif args.data:
        data = [audio for _, audio in load_audio_dir(args.data, codec_cfg.sample_rate)]
    if args.synthetic:
        data += synthetic_clips(args.synthetic, args.synthetic_seconds, codec_cfg.sample_rate, seed=train_cfg.seed)
    max_seconds = args.max_minutes * 60 if args.max_minutes else None
    train_codec(data, codec_cfg, args.steps, args.out, train_cfg, max_seconds, resume=not args.no_resume,
                log=lambda r: print(json.dumps(r), flush=True), init=args.init, stop_at=args.stop_at)


if __name__ == "__main__":
    main()
