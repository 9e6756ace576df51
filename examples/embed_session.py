"""Embed lmdm in an app: a LiveSession hands you audio block after block; you decide where it goes.

    .venv/bin/python examples/embed_session.py                  # writes embed_session.wav (10 s)
    .venv/bin/python examples/embed_session.py my_take.wav
    .venv/bin/python examples/embed_session.py my_take.wav tiny # a tiny random model: tones, not music, in a second

Loads the bundled default model, renders 10 s into a WAV file as it goes, changes the prompt
half-way, and prints the session's stats. Takes about 2 s on a 2-core CPU.
"""

import sys

import soundfile as sf

import lmdm
from lmdm.render import resolve_model


def main(path: str = "embed_session.wav", model_name: str = "default") -> int:
    model = resolve_model(model_name)  # 'default' (bundled), a checkpoint directory, or tiny (random weights)
    session = lmdm.LiveSession(model, prompt="dub techno, deep chords", seed=0)  # steps, cfg: the model's; 1 thread (lmdm/threads.py)

    with sf.SoundFile(path, "w", samplerate=session.sample_rate, channels=session.channels) as out:
        out.write(session.render(5.0))  # 5 s, generated block by block; [samples, channels] float32
        # Validated now, applied from the next block on, gliding over 4 blocks in embedding space.
        session.set_prompt([("acid bass", 0.7), ("ambient pads", 0.3)], over_blocks=4)
        while out.frames < 10 * session.sample_rate:  # what a real-time app does: one block at a time
            block = session.next_block()
            out.write(block[: 10 * session.sample_rate - out.frames])

    stats = session.stats
    print(f"wrote {path}: {stats.seconds:.2f} s generated, 10 s written at {session.sample_rate} Hz")
    print(f"{stats.blocks} blocks of {session.block_seconds:g} s, {stats.mean_compute_ms:.1f} ms each "
          f"(real-time factor {stats.real_time_factor:.3f}: below 1 keeps up with playback)")
    print(f"now: prompt {stats.prompt!r}, regime {stats.regime}, {stats.steps} steps, "
          f"{stats.cache_resets} cache resets, cache {stats.cache_bytes / 1024:.0f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
