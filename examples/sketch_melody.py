"""Sketch-based synthesis: the model follows a melody, a rhythm and a loudness curve you give it.

    .venv/bin/python examples/sketch_melody.py                      # writes sketch_melody.wav
    .venv/bin/python examples/sketch_melody.py --model DIR -o take.wav

Three sketches, 8 s each, from three kinds of source: mini-notation (like the language's
`sketch melody "…"`), a note list (start s, duration s, MIDI) with an array loudness curve, and a
line "hummed" into a pitch tracker (here a synthesized one; pass --hum FILE to use a recording).
`--model default` is the bundled model (trained with the sketch inputs); a checkpoint directory
works too.
"""

import argparse
import sys

import numpy as np
import soundfile as sf

import lmdm
from lmdm.render import resolve_model  # 'default' (bundled), a checkpoint directory, or tiny/small (random)
from lmdm.threads import add_threads_argument
from lmdm.conditioning.sketch_sources import sketch_from_audio


def hummed_line(sample_rate: int, seconds: float = 4.0) -> np.ndarray:
    """A sung-like line: a few notes with vibrato and a breathy attack."""
    notes = [(0.0, 0.6, 62), (0.6, 0.4, 65), (1.0, 1.0, 69), (2.0, 0.5, 67), (2.5, 0.5, 65), (3.0, 1.0, 62)]
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    out = np.zeros_like(t)
    for start, dur, midi in notes:
        sel = (t >= start) & (t < start + dur)
        tt = t[sel] - start
        f = 440 * 2 ** ((midi - 69) / 12) * (1 + 0.006 * np.sin(2 * np.pi * 5.5 * tt))
        env = np.minimum(1, tt / 0.03) * np.minimum(1, (dur - tt) / 0.05)
        out[sel] = 0.3 * env * (np.sin(2 * np.pi * np.cumsum(f) / sample_rate) + 0.3 * np.sin(4 * np.pi * np.cumsum(f) / sample_rate))
    return out.astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--out", default="sketch_melody.wav")
    p.add_argument("--model", default="default", help="'default' (the bundled model), a checkpoint directory, or tiny (random weights, fast)")
    p.add_argument("--hum", default=None, help="an audio file of a hummed or played line (default: a synthesized one)")
    p.add_argument("--seconds", type=float, default=8.0, help="per sketch")
    add_threads_argument(p)  # the policy of every command that plays (lmdm/threads.py)
    a = p.parse_args(argv)
    model = resolve_model(a.model)
    session = lmdm.LiveSession(model, prompt="synth lead over soft pads, 120 bpm", seed=0, threads=a.threads)
    if not session.supports("sketch"):
        print(f"this model ({model.name}) was trained without sketch inputs", file=sys.stderr)
        return 1
    parts = []

    # 1. mini-notation: one cycle = one bar at the given tempo, looping; all three controls
    session.set_sketch(melody="c4 e4 g4 ~ <a4 b4>", rhythm="x ~ x x ~ x ~ ~", loudness="0.6 0.9", bpm=120)
    parts.append(session.render(a.seconds))

    # 2. a note list for the melody, one loudness value per latent frame (a swell), no rhythm
    notes = [(0.0, 0.5, 67), (0.5, 0.5, 69), (1.0, 1.0, 72), (2.0, 0.5, 71), (2.5, 1.5, 67)]
    swell = np.concatenate([np.linspace(0.3, 1.0, 100), np.linspace(1.0, 0.3, 100)])  # 8 s at 25 frames/s
    session.set_sketch(melody=notes, rhythm=None, loudness=swell)
    parts.append(session.render(a.seconds))

    # 3. hum it: a pitch tracker (YIN), onsets and loudness from audio, all three at once
    if a.hum:
        hum, rate = sf.read(a.hum, dtype="float32", always_2d=True)
    else:
        rate = session.sample_rate
        hum = hummed_line(rate)
    heard = sketch_from_audio(hum, rate, session.frame_rate)
    print("heard MIDI notes:", [int(m) for m in np.unique(heard["melody"]) if m > 0])
    session.set_sketch(heard)
    parts.append(session.render(a.seconds))

    session.set_sketch(None)  # all off from the next block
    parts.append(session.render(2.0))
    audio = np.concatenate(parts)
    sf.write(a.out, audio, session.sample_rate)
    s = session.stats
    print(f"wrote {a.out}: {len(audio) / session.sample_rate:.1f} s, {s.blocks} blocks, real-time factor {s.real_time_factor:.3f}, "
          f"cache resets {s.cache_resets}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
