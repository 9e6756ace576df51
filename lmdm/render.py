"""`lmdm render`, and how every command that writes audio gets its model and its output file.

    lmdm render "lo-fi hip hop beat with warm piano chords at 80 bpm" --seconds 30 -o out.wav

prompt ──LiveSession (block by block)──▶ stream_to_file ──Recorder (crash-safe WAV, header refreshed
every second)──▶ out.wav / .flac / .ogg

`render`, `lmdm live --offline` and `lmdm delay` share this module's pieces: `resolve_model` (a
model name, checkpoint or preset from the command line), `check_audio_out` (one policy for output
paths: a .wav/.flac/.ogg name in a writable folder that exists, else one line and exit 2),
`one_of` (a choice that says "did you mean"), `note_if_random`, `output_recorder` and `stream_to_file`.
"""

from __future__ import annotations

import argparse
import difflib
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from lmdm.audio.record import Recorder, RecordError, output_problem
from lmdm.model.placement import add_placement_arguments
from lmdm.threads import add_threads_argument

MODEL_HELP = "'default' (the bundled trained model: the default), a checkpoint directory, or a preset with random weights: small | tiny"


def add_model_arguments(p: argparse.ArgumentParser, *, guide_inputs: bool = False) -> None:
    """The measuring commands' ``--block-frames`` (and ``--guide-inputs``), as ``resolve_model`` takes them."""
    p.add_argument("--block-frames", type=int, metavar="N",
                   help="blocks of N latent frames, one of the lengths the model was trained on (as lmdm live --block-frames)")
    if guide_inputs:
        p.add_argument("--guide-inputs", type=float, default=None, metavar="W",
                       help="how much guidance pushes towards the sketch and clock too, 0 to 1 (LiveSession(guide_inputs=W); default: the model's)")


def resolve_model(spec: str, block_frames: int | None = None, guide_inputs: float | None = None):
    """'default': the bundled model; 'small' / 'tiny': a preset with random weights; else a checkpoint path.
    ``block_frames``: playing blocks of that length (``LMDM.reblocked``); ``guide_inputs``: the model's
    recommended guidance towards its inputs replaced (every session takes it). Else one line, exit 2."""
    import lmdm
    from lmdm.checkpoint import CheckpointError

    presets = {"small": lmdm.ModelConfig.small, "tiny": lmdm.ModelConfig.tiny}
    if spec in presets:
        model = lmdm.build_model(presets[spec](), seed=0)
    else:
        try:
            model = lmdm.load_model(None if spec == "default" else spec)
        except CheckpointError as e:
            print(f"lmdm: {e} (--model: default, {', '.join(presets)}, or a checkpoint directory)", file=sys.stderr)
            raise SystemExit(2) from None
    if guide_inputs is not None:
        if not 0 <= guide_inputs <= 1:
            print(f"lmdm: --guide-inputs must be a number from 0 to 1, got {guide_inputs:g}", file=sys.stderr)
            raise SystemExit(2)
        model.guide_inputs = guide_inputs
    if block_frames is None:
        return model
    try:
        return model.reblocked(block_frames)
    except ValueError as e:
        print(f"lmdm: --block-frames: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def one_of(choices: Sequence[str]) -> Callable[[str], str]:
    """An argparse type: one of `choices`, else an error that says which was meant ("did you mean")."""

    def check(text: str) -> str:
        if text in choices:
            return text
        near = difflib.get_close_matches(text, choices, n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise argparse.ArgumentTypeError(f"unknown value {text!r}: {hint}choose from {', '.join(choices)}")

    return check


def check_audio_out(p: argparse.ArgumentParser, out: Path) -> None:
    """Every command's check of its audio output (``output_problem``: a .wav/.flac/.ogg name in a
    writable folder that exists; folders are never created). Else one line on stderr, exit 2."""
    problem = output_problem(out)
    if problem:
        print(f"{p.prog}: {problem}", file=sys.stderr)
        raise SystemExit(2)


def note_if_random(model, spec: str) -> None:
    if model.name == "random":
        print(f"note: model {spec!r} has random weights and a placeholder codec: expect tones, not music", file=sys.stderr)


def output_recorder(session) -> Recorder:
    """How every command writes its output file: the recorder's crash-safe 24-bit WAV (.flac and
    .ogg through a WAV spool, encoded at the end), its header refreshed every second of audio, so
    a killed command leaves a valid file holding all but the last second at most."""
    return Recorder(session.sample_rate, session.channels)


def stream_to_file(session, out: Path, samples: int, *, desc: str, quiet: bool, keep: bool = False):
    """Pull `samples` of the session's stream, block by block, into the audio file `out` (replaced
    if it exists), with a progress bar (block count, real-time factor). -> the audio
    [samples, channels] if `keep`, else None. A file that cannot be written: one line, exit 2."""
    import numpy as np

    from lmdm.progress import advance, progress

    kept: list[np.ndarray] = []
    blocks = -(-samples // session.block_samples)
    try:
        with output_recorder(session).start(out, overwrite=True) as recorder, \
                progress(total=blocks, desc=desc, unit="block", enabled=None if not quiet else False) as bar:
            left = samples
            while left > 0:
                block = session.read(min(left, session.block_samples))
                recorder.write(block)
                if keep:
                    kept.append(block)
                left -= len(block)
                advance(bar, 1, rtf=round(session.stats.real_time_factor, 3))
    except RecordError as error:  # disk full, a folder removed meanwhile, ...
        print(f"lmdm {desc}: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    return np.concatenate(kept) if keep else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lmdm render", description="Stream a prompt to an audio file, block by block.")
    p.add_argument("prompt", help='e.g. "lo-fi hip hop beat with warm piano chords at 80 bpm"')
    p.add_argument("--seconds", type=float, default=30.0, help="how much audio to render (default 30)")
    p.add_argument("-o", "--out", default="out.wav", help="audio file: .wav, .flac or .ogg (default out.wav)")
    p.add_argument("--model", default="default", help=MODEL_HELP + " (default: default)")
    p.add_argument("--regime", default="block_causal", type=one_of(("block_causal", "encdec", "naive")), metavar="{block_causal,encdec,naive}",
                   help="attention regime (default block_causal)")
    p.add_argument("--no-cache", action="store_true", help="full forward at every step (same audio, slower)")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's recommended, 8 unless it says otherwise)")
    p.add_argument("--sampler", default="pingpong", type=one_of(("pingpong", "euler")), metavar="{pingpong,euler}", help="(default pingpong)")
    p.add_argument("--cfg", type=float, default=None, help="classifier-free guidance scale (default: the model's recommended; 1 = one pass)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--block-frames", type=int, metavar="N",
                   help="blocks of N latent frames, one of the lengths the model was trained on (default: its own; the bundled model has only 25 = 1 s; recipes/default/lmdm_blocks.toml trains 25 and 12 = 0.48 s)")
    p.add_argument("--plot", action="store_true", help="also write a spectrogram PNG next to the audio")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_threads_argument(p)
    add_placement_arguments(p)
    a = p.parse_args(argv)

    import lmdm

    out = Path(a.out)
    check_audio_out(p, out)
    if a.plot:
        from lmdm.plot import plot_unavailable

        if (problem := plot_unavailable()) is not None:
            print(f"{p.prog}: --plot: {problem}", file=sys.stderr)
            return 2
    if not (math.isfinite(a.seconds) and 0 < a.seconds <= 86_400):
        p.error(f"--seconds must be a number from 0 to 86400 (24 h), got {a.seconds:g}")
    import torch

    torch.set_flush_denormal(True)  # a command-line process of its own: no subnormal slow paths
    model = resolve_model(a.model)
    try:
        session = lmdm.LiveSession(model, prompt=a.prompt, regime=a.regime, use_cache=not a.no_cache, steps=a.steps, sampler=a.sampler, cfg=a.cfg, seed=a.seed,
                                     threads=a.threads, device=a.model_device, dtype=a.model_dtype, block_frames=a.block_frames)
    except ValueError as e:
        p.error(str(e))
    if not a.quiet:
        note_if_random(model, a.model)
    total = round(a.seconds * session.sample_rate)
    audio = stream_to_file(session, out, total, desc="render", quiet=a.quiet, keep=a.plot)
    s = session.stats
    if not a.quiet:
        print(f"wrote {out} ({total / session.sample_rate:.2f} s, {session.sample_rate} Hz); "
              f"{s.blocks} blocks, {s.mean_compute_ms:.0f} ms per {session.block_seconds:g} s block, real-time factor {s.real_time_factor:.3f}")
    if a.plot:
        from lmdm.plot import spectrogram_png

        png = out.with_suffix(".png")
        spectrogram_png(audio[:, 0], session.sample_rate, png, title=a.prompt)
        if not a.quiet:
            print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
