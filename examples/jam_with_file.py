"""Jamming: the model plays the accompaniment around a player (here: an audio file, fed as if live).

    .venv/bin/python examples/jam_with_file.py                          # a synthesized bass line as the player
    .venv/bin/python examples/jam_with_file.py player.wav -o jam.wav --mix-input
    .venv/bin/python examples/jam_with_file.py --follow listen           # hear the player's latents instead

The file is fed block by block, as an audio callback would: before block n is generated, the
session has received the player's audio up to the start of block n - 1 (a live engine with one
block queued). The model only uses input frames older than one block (the latency cutoff it was
trained with), so the first two blocks are unaccompanied. --mix-input puts the player into the
output file too; without it you get the accompaniment alone (live, you would monitor the player
directly). `--model default` is the bundled model (trained with jamming windows).

How the model follows the player (`--follow`): "key", the default for models with sketch inputs,
tracks the player's beat on what was heard and gives it as each block's rhythm sketch, and the
notes the player plays most, one per beat, as its melody sketch; "beat" gives the rhythm only;
"listen" lets the model hear the player's codec latents. docs/applications.md measures all three:
"key" and "beat" bring the accompaniment onto the player's grid, and "key" into its notes.
"""

import argparse
import sys

import numpy as np
import soundfile as sf

import lmdm
from lmdm.render import resolve_model  # 'default' (bundled), a checkpoint directory, or tiny/small (random)
from lmdm.threads import add_threads_argument


def bass_line(sample_rate: int, seconds: float = 16.0, bpm: float = 120.0) -> np.ndarray:
    """A plucked bass on A minor, one note per beat."""
    pattern = [45, 45, 52, 48, 43, 43, 50, 47]
    beat = 60.0 / bpm
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    out = np.zeros_like(t)
    for i in range(int(seconds / beat)):
        f = 440 * 2 ** ((pattern[i % len(pattern)] - 69) / 12)
        sel = (t >= i * beat) & (t < (i + 1) * beat)
        tt = t[sel] - i * beat
        out[sel] = 0.4 * np.exp(-tt * 4) * (np.sin(2 * np.pi * f * tt) + 0.4 * np.sin(4 * np.pi * f * tt))
    return out.astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("player", nargs="?", default=None, help="the player's audio file (default: a synthesized bass line)")
    p.add_argument("-o", "--out", default="jam.wav")
    p.add_argument("--model", default="default", help="'default' (the bundled model), a checkpoint directory, or tiny (random weights, fast)")
    p.add_argument("--prompt", default="drums and chords, funk")
    p.add_argument("--mix-input", action="store_true", help="mix the player into the output")
    p.add_argument("--follow", choices=["key", "beat", "listen"], default=None, help="how the model follows the player (default: the session's)")
    add_threads_argument(p)  # the policy of every command that plays (lmdm/threads.py)
    a = p.parse_args(argv)
    model = resolve_model(a.model)
    try:
        session = lmdm.LiveSession(model, prompt=a.prompt, seed=0, mix_input=a.mix_input, jam_follow=a.follow, threads=a.threads)
        session.set_jam(True)  # checks that the model can follow the player this way
    except ValueError as e:
        print(f"this model ({model.name}) cannot jam: {e}", file=sys.stderr)
        return 1
    if a.player:
        player, rate = sf.read(a.player, dtype="float32", always_2d=True)
    else:
        rate = session.sample_rate
        player = bass_line(rate)
    step = round(session.block_seconds * rate)  # one block of the player's audio, at its own rate
    blocks = -(-len(player) // step)
    out = []
    for n in range(blocks):
        if n >= 1:  # before block n: the player's audio up to the start of block n - 1 has arrived
            session.feed_input(player[(n - 1) * step : n * step], sample_rate=rate)
        out.append(session.next_block())
    audio = np.concatenate(out)
    sf.write(a.out, audio, session.sample_rate)
    s = session.stats
    print(f"wrote {a.out}: {len(audio) / session.sample_rate:.1f} s, {'player + ' if a.mix_input else ''}accompaniment; "
          f"heard {s.input_seconds:.1f} s of input, jamming {s.jamming} (follow: {s.jam_follow}), exact cache rebuilds {s.cache_rebuilds}, resets {s.cache_resets}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
