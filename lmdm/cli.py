"""The `lmdm` command: render, bench, corpus, devices, ...

Each subcommand is a `main(argv) -> int` function in the module that owns the idea; this file
only dispatches (and holds the two one-screen commands, `vocab` and `devices`), so `lmdm bench` is
`python -m lmdm.bench`, `lmdm render` is `python -m lmdm.render` and so on.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from lmdm.render import MODEL_HELP

# subcommand -> ("module:function", one-line help); the function takes argv and returns an exit code
COMMANDS: dict[str, tuple[str, str]] = {
    "render": ("lmdm.render:main", "stream a prompt to an audio file, block by block through LiveSession"),
    "bench": ("lmdm.bench:main", "time naive vs cached generation and count FLOPs"),
    "corpus": ("lmdm.corpus.cli:main", "make or inspect the procedural music corpus"),
    "devices": ("lmdm.cli:devices_main", "list audio devices"),
    "vocab": ("lmdm.cli:vocab_main", "the caption words a model was trained on"),
    "live": ("lmdm.live:main", "perform a set: play it live (REPL, OSC, --watch) or render it --offline"),
    "delay": ("lmdm.delay:main", "generative delay on an audio file: each repeat re-imagined by the model (SDEdit)"),
    "train": ("lmdm.train.cli:main", "train a model: encode latents, base DiT, LMDM fine-tune, export (docs/training.md)"),
    "convert": ("lmdm.sao.convert:main", "convert a Stable Audio Open (Small) model directory to our checkpoint format (docs/sao.md)"),
    "eval": ("lmdm.eval.cli:main", "score generated audio: FD-probe, prompt adherence, tempo/key/loudness over time (docs/evaluation.md)"),
}


def vocab_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lmdm vocab", description="The words of the captions a model was trained on, most common first.")
    p.add_argument("--model", default="default", help=MODEL_HELP)
    p.add_argument("--top", type=int, default=200, help="how many words (0 = all)")
    a = p.parse_args(argv)
    import json

    from lmdm.checkpoint import CheckpointError, resolve
    from lmdm.loading import DEFAULT_DIR

    try:
        directory = DEFAULT_DIR if a.model == "default" else resolve(a.model)
    except CheckpointError as e:
        print(f"lmdm vocab: {e}", file=sys.stderr)
        return 2
    file = Path(directory) / "vocab.json"
    if not file.is_file():
        print(f"lmdm vocab: {directory} has no vocab.json (it is written by `lmdm train export`)", file=sys.stderr)
        return 2
    words = list(json.loads(file.read_text()).items())
    words = words[: a.top] if a.top else words
    print(f"{len(words)} words the model was trained on (any text works: unknown words share hashed n-grams with known ones)")
    print(", ".join(f"{w} ({n})" for w, n in words))
    return 0


def devices_main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="lmdm devices", description="The audio devices PortAudio sees, their host APIs, the default "
                            "ones; lmdm live --device takes a name or number from this list.").parse_args(argv)
    from lmdm.audio.devices import list_devices

    print(list_devices())
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: lmdm COMMAND [ARGS]\n\ncommands:")
        for name, (_, help_) in COMMANDS.items():
            print(f"  {name:<10} {help_}")
        print("\n`lmdm COMMAND --help` for a command's options")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"lmdm: unknown command {name!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module, function = COMMANDS[name][0].split(":")
    return getattr(importlib.import_module(module), function)(rest)


if __name__ == "__main__":
    sys.exit(main())
