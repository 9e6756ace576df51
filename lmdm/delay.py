"""`lmdm delay in.wav -o out.wav`: the generative delay (lmdm/conditioning/delay.py) run on an audio file.

Each repeat of the file is re-imagined by the model under `--prompt` at `--strength` (SDEdit), with
`--feedback` and `--mix`; the output runs `--tail` seconds past the input (default: two delay times).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from lmdm.conditioning.delay import delay_settings
from lmdm.model.placement import add_placement_arguments
from lmdm.threads import add_threads_argument

MAX_TAIL_SECONDS = 3600.0  # `lmdm delay --tail`: at most an hour after the input ends


def build_parser() -> argparse.ArgumentParser:
    from lmdm.render import MODEL_HELP

    p = argparse.ArgumentParser(prog="lmdm delay", description="Generative delay on an audio file: each repeat is re-imagined by the model (SDEdit).")
    p.add_argument("input", help="audio file (any rate; resampled to the model's)")
    p.add_argument("-o", "--out", default="delay.wav", help="audio file: .wav, .flac or .ogg (default delay.wav)")
    p.add_argument("--prompt", action="append", default=None, help="timbre prompt of the repeats; repeat the option to take turns per repeat (default: the stream prompt)")
    p.add_argument("--stream-prompt", default="", help="the session's own prompt (used when no --prompt is given)")
    p.add_argument("--strength", type=float, default=0.6, help="0 = the input itself, 1 = ignore the input (default 0.6)")
    p.add_argument("--blocks", type=float, default=1.0, help="delay time in blocks (default 1)")
    p.add_argument("--beats", type=float, default=None, help="delay time in beats at --bpm (instead of --blocks)")
    p.add_argument("--bpm", type=float, default=120.0, help="tempo for --beats (default 120)")
    p.add_argument("--feedback", type=float, default=0.3, help="how much of each repeat feeds the next (default 0.3)")
    p.add_argument("--mix", type=float, default=0.5, help="wet level; the dry input is mixed in at 1 - mix (default 0.5)")
    p.add_argument("--tail", type=float, default=None,
                   help=f"seconds after the input ends, 0 to {MAX_TAIL_SECONDS:g} (default: two delay times)")
    p.add_argument("--model", default="default", help=MODEL_HELP + " (default: default)")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's recommended)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_threads_argument(p)  # lmdm/threads.py: the same --threads as every command that plays
    add_placement_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    a = p.parse_args(argv)

    import soundfile as sf

    import lmdm
    from lmdm.render import check_audio_out, note_if_random, resolve_model, stream_to_file

    if a.tail is not None and not (math.isfinite(a.tail) and 0 <= a.tail <= MAX_TAIL_SECONDS):
        p.error(f"--tail must be a number of seconds from 0 to {MAX_TAIL_SECONDS:g}, got {a.tail:g}")
    out = Path(a.out)
    check_audio_out(p, out)
    try:
        audio, rate = sf.read(a.input, dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several kinds
        p.error(f"cannot read {a.input}: {e}")
    model = resolve_model(a.model)
    try:
        session = lmdm.LiveSession(model, prompt=a.stream_prompt, steps=a.steps, seed=a.seed, mix_input=True, threads=a.threads,
                                     device=a.model_device, dtype=a.model_dtype)
        time = dict(beats=a.beats, bpm=a.bpm) if a.beats is not None else dict(blocks=a.blocks)
        settings = delay_settings(**time, block_seconds=session.block_seconds, strength=a.strength, feedback=a.feedback,
                                  mix=a.mix, prompts=tuple(a.prompt or ()))
        session.set_delay(settings)
        session.feed_input(audio, sample_rate=rate)
    except ValueError as e:
        p.error(str(e))
    if not a.quiet:
        note_if_random(model, a.model)
    delay_seconds = settings.time_blocks * session.block_seconds
    tail = 2 * delay_seconds if a.tail is None else a.tail
    total = round(len(audio) / rate * session.sample_rate + tail * session.sample_rate)
    stream_to_file(session, out, total, desc="delay", quiet=a.quiet)
    if not a.quiet:
        print(f"wrote {out} ({total / session.sample_rate:.2f} s): delay {settings.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
