"""The generative delay: each repeat of a phrase comes back re-imagined by the model.

    .venv/bin/python examples/generative_delay.py                      # a synthesized phrase as the input
    .venv/bin/python examples/generative_delay.py phrase.wav -o delay.wav --strength 0.6

The input is fed ahead (as from a file), the delay repeats it every 2 blocks, noised to
`strength` and denoised under prompts that take turns per repeat, with feedback and a wet/dry
mix (the dry input is mixed in: mix_input=True). Then a strength sweep shows the trade-off: low
strength keeps the input's notes, high strength follows the prompt. The same from the shell:
`lmdm delay phrase.wav -o out.wav --prompt "glass bells" --strength 0.6`. `--model default` is the
bundled model; `--model tiny` runs the same calls on a random model in a second (tones, not music).
"""

import argparse
import sys

import numpy as np
import soundfile as sf

import lmdm
from lmdm.render import resolve_model  # 'default' (bundled), a checkpoint directory, or tiny/small (random)
from lmdm.threads import PLAY_THREADS, add_threads_argument
from lmdm.conditioning.sketch_sources import sketch_from_audio


def phrase(sample_rate: int) -> np.ndarray:
    """Four plucked notes, then silence for the repeats."""
    t = np.arange(int(2.0 * sample_rate)) / sample_rate
    out = np.zeros(int(8.0 * sample_rate), dtype=np.float64)
    for i, midi in enumerate([64, 67, 71, 74]):
        f = 440 * 2 ** ((midi - 69) / 12)
        tt = t[: int(0.5 * sample_rate)]
        seg = 0.4 * np.exp(-tt * 6) * np.sin(2 * np.pi * f * tt)
        start = int(i * 0.5 * sample_rate)
        out[start : start + len(seg)] += seg
    return out.astype(np.float32)


def run(model, player, rate, seconds, threads: int = PLAY_THREADS, **delay) -> tuple[np.ndarray, lmdm.LiveSession]:
    session = lmdm.LiveSession(model, prompt="", seed=0, mix_input=True, threads=threads)
    session.set_delay(2, **delay)
    session.feed_input(player, sample_rate=rate)
    return session.render(seconds), session


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("input", nargs="?", default=None, help="audio file (default: a synthesized phrase)")
    p.add_argument("-o", "--out", default="generative_delay.wav")
    p.add_argument("--model", default="default", help="'default' (the bundled model), a checkpoint directory, or tiny (random weights, fast)")
    p.add_argument("--strength", type=float, default=0.6)
    add_threads_argument(p)  # the policy of every command that plays (lmdm/threads.py)
    a = p.parse_args(argv)
    model = resolve_model(a.model)
    if a.input:
        player, rate = sf.read(a.input, dtype="float32", always_2d=True)
    else:
        rate = model.sample_rate
        player = phrase(rate)
    seconds = len(player) / rate + 8.0
    audio, session = run(model, player, rate, seconds, a.threads, strength=a.strength, feedback=0.4, mix=0.6,
                         prompts=["glass bells", "warm strings"])
    sf.write(a.out, audio, session.sample_rate)
    print(f"wrote {a.out}: {len(audio) / session.sample_rate:.1f} s, delay {session.stats.delay}")

    # strength sweep: how much of the input's melody the first repeat keeps (frames with the same pitch class)
    S = session.block_samples
    heard = sketch_from_audio(player, rate, session.frame_rate)["melody"]
    for strength in (0.0, 0.3, 0.6, 1.0):
        wet, ses = run(model, player, rate, 4 * model.config.block_seconds, a.threads, strength=strength, feedback=0.0, mix=1.0)
        repeat = sketch_from_audio(wet[2 * S :, 0], ses.sample_rate, ses.frame_rate)["melody"]  # the input, 2 blocks late
        n = min(len(repeat), len(heard))
        voiced = heard[:n] > 0
        kept = float(np.mean(repeat[:n][voiced] % 12 == heard[:n][voiced] % 12)) if voiced.any() else float("nan")
        print(f"strength {strength:.1f}: the first repeat keeps {kept:.0%} of the input's pitch classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
