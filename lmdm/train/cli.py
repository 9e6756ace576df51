"""`lmdm train ...` (also `python -m lmdm.train ...`, which is what torchrun launches).

    lmdm train encode --corpus data/corpus --codec runs/codec --out runs/latents
    lmdm train base --recipe recipes/base.toml [--set train.lr=1e-4 ...] [--resume]
    lmdm train lmdm --recipe recipes/lmdm_block_causal.toml [--resume]
    lmdm train arc --recipe recipes/arc_block_causal.toml [--resume]     (ARC-Forcing, docs/arc_forcing.md)
    lmdm train export runs/lmdm-block-causal --out lmdm/weights
    lmdm train codec ...        (the codec trainer, python -m lmdm.train.codec)

See docs/training.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence


def _stage_main(stage: str, argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog=f"lmdm train {stage}", description=f"Train the {stage} stage from a recipe (docs/training.md).")
    example = {"base": "base", "lmdm": "lmdm_block_causal", "arc": "arc_block_causal"}[stage]
    p.add_argument("--recipe", required=True, help=f"TOML recipe, e.g. recipes/{example}.toml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a recipe setting, e.g. --set train.lr=1e-4 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in train.out")
    p.add_argument("--device", help="shortcut for --set train.device=... (cpu, cuda)")
    p.add_argument("--out", help="shortcut for --set train.out=...")
    p.add_argument("--steps", type=int, help="shortcut for --set train.steps=...")
    p.add_argument("--max-minutes", type=float, help="shortcut for --set train.max_minutes=...")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no log lines (log.jsonl is still written)")
    a = p.parse_args(argv)

    from lmdm.checkpoint import CheckpointError
    from lmdm.train.loop import train
    from lmdm.train.recipe import load_recipe

    if stage == "arc":
        from lmdm.train.arc_forcing import train

    overrides = list(a.overrides)
    for flag, key in (("device", "train.device"), ("out", "train.out"), ("steps", "train.steps"), ("max_minutes", "train.max_minutes")):
        value = getattr(a, flag)
        if value is not None:
            overrides.append(f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}")
    try:
        recipe = load_recipe(a.recipe, overrides)
        if recipe.stage != stage:
            p.error(f"{a.recipe} is a {recipe.stage!r} recipe; run it with `lmdm train {recipe.stage}`")
        result = train(recipe, resume=a.resume, log=(lambda line: None) if a.quiet else None, progress=False if a.quiet else None)
    except (ValueError, FileNotFoundError, CheckpointError) as e:
        print(f"lmdm train {stage}: {e}", file=sys.stderr)
        return 2
    if not a.quiet:
        print(f"lmdm train {stage}: step {result.step}, loss {result.loss:.4f}, checkpoint {result.checkpoint}", file=sys.stderr)
    return 0


def _encode_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="lmdm train encode", description="Pre-encode a corpus into codec latents (resumable).")
    p.add_argument("--corpus", required=True, help="corpus directory (lmdm corpus make)")
    p.add_argument("--codec", required=True, help="trained codec directory (codec.json + codec.safetensors), a Stable Audio Open model directory, or 'placeholder'")
    p.add_argument("--out", required=True, help="latents directory; re-running the same command resumes")
    p.add_argument("--split", default="all", choices=["all", "train", "valid", "test"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--latent-dim", type=int, default=32, help="latent channels of the placeholder codec (ignored otherwise)")
    p.add_argument("--stems", type=int, nargs="?", const=1, default=0, metavar="N",
                   help="also encode each stem and the mix of the others (for jamming models); N: every N-th example only")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)

    from lmdm.train.latents import encode_corpus

    try:
        encode_corpus(a.corpus, a.codec, a.out, split=a.split, device=a.device, latent_dim=a.latent_dim, stems=a.stems,
                      progress=False if a.quiet else None, log=(lambda line: None) if a.quiet else (lambda line: print(line, file=sys.stderr)))
    except (ValueError, FileNotFoundError) as e:
        print(f"lmdm train encode: {e}", file=sys.stderr)
        return 2
    return 0


def _export_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="lmdm train export", description="Write a self-contained model directory (weights, config, codec; no training state).")
    p.add_argument("checkpoint", help="a checkpoint directory, or a run directory (its latest checkpoint)")
    p.add_argument("--out", required=True, help="e.g. lmdm/weights for the bundled default model")
    p.add_argument("--name", help="model name stored in config.json")
    p.add_argument("--half", action="store_true", help="store weight matrices as float16 (half the size; loaded as float32)")
    p.add_argument("--guidance", type=float, help="the CFG scale the model sounds best with (LiveSession's default for it; measure with lmdm.eval.model_quality --cfg)")
    p.add_argument("--steps", type=int, help="the sampler steps it is made for (LiveSession's default; default: the checkpoint's, else 8)")
    p.add_argument("--guide-inputs", type=float, metavar="W",
                   help="how much its guidance pushes towards the sketch and clock too, 0 to 1 (LiveSession's default; measure with lmdm.eval.music --guide-inputs)")
    a = p.parse_args(argv)

    from lmdm.checkpoint import CheckpointError, read_config, resolve, save_model
    from lmdm.loading import load_model

    try:
        source = resolve(a.checkpoint)
        doc = read_config(source)
        model = load_model(source)
        if a.guidance is not None:
            model.guidance = a.guidance
        if a.steps is not None:
            if a.steps < 1:
                raise CheckpointError(f"--steps must be at least 1, got {a.steps}")
            model.steps = a.steps
        if a.guide_inputs is not None:
            if not 0 <= a.guide_inputs <= 1:
                raise CheckpointError(f"--guide-inputs must be a number from 0 to 1, got {a.guide_inputs:g}")
            model.guide_inputs = a.guide_inputs
        info = {k: doc[k] for k in ("stage", "regime", "step", "recipe") if k in doc}
        out = save_model(model, a.out, name=a.name or doc.get("name") or source.name, exported_from=str(source.resolve()), half=a.half, **info)
        vocab = caption_vocabulary(doc)
        if vocab:
            (out / VOCAB_FILE).write_text(json.dumps(vocab, indent=1) + "\n")
    except (CheckpointError, FileNotFoundError) as e:
        print(f"lmdm train export: {e}", file=sys.stderr)
        return 2
    print(f"lmdm train export: {out}", file=sys.stderr)
    return 0


VOCAB_FILE = "vocab.json"  # {word: count} over the training captions, shown by `lmdm vocab`


def caption_vocabulary(doc: dict) -> dict[str, int]:
    """Word counts of the captions the checkpoint was trained on (from its recipe's latents index), most common first."""
    import re
    from collections import Counter
    from pathlib import Path

    latents = doc.get("latents") or ((doc.get("recipe") or {}).get("data") or {}).get("latents")
    index = Path(latents) / "index.jsonl" if latents else None
    if index is None or not index.is_file():
        return {}
    words: Counter[str] = Counter()
    for line in index.read_text().splitlines():
        if line.strip():
            words.update(re.findall(r"[a-z&'-]+|\d+", json.loads(line)["caption"].lower()))
    return dict(words.most_common())


def _codec_main(argv: Sequence[str]) -> int:
    from lmdm.train.codec import main as codec_main

    codec_main(list(argv))
    return 0


COMMANDS = {
    "encode": (_encode_main, "pre-encode a corpus into codec latents"),
    "base": (lambda argv: _stage_main("base", argv), "train the bidirectional base DiT"),
    "lmdm": (lambda argv: _stage_main("lmdm", argv), "fine-tune the base into a live model (block_causal or encdec)"),
    "arc": (lambda argv: _stage_main("arc", argv), "ARC-Forcing: post-train a live model on its own rollouts (docs/arc_forcing.md)"),
    "export": (_export_main, "write a self-contained model directory from a checkpoint"),
    "codec": (_codec_main, "train the audio codec (python -m lmdm.train.codec)"),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: lmdm train COMMAND [options]\n\ncommands:")
        for name, (_, help_) in COMMANDS.items():
            print(f"  {name:<8} {help_}")
        print("\n`lmdm train COMMAND --help` for its options; docs/training.md for the whole recipe")
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"lmdm train: unknown command {argv[0]!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    return COMMANDS[argv[0]][0](argv[1:])
