"""LiveSession: the object an app embeds to get a stream of music, block after block.

    session = LiveSession(model, prompt="dub techno", regime="block_causal")
    audio = session.render(seconds=10)      # float32 [samples, channels]
    session.set_prompt("ambient pads", over_blocks=2)   # takes effect at the next block

Every setter validates at once (ValueError with a clear message) and takes effect at the start
of the next block, on the generation thread; nothing but `reset()` clears the history or the KV
cache. Setters may be called from any thread while another thread pulls audio.

Conditioning beyond the prompt (docs/applications.md), all applied between blocks:

    session.set_sketch(melody="c4 e4 g4 ~", bpm=120)      # or arrays, note lists, sketch_from_audio(...)
    session.feed_input(player_audio)                       # jamming: the model plays the accompaniment
    session.set_delay(2, strength=0.6, prompts=["glass bells"])   # the generative delay

Each block is computed on ``threads`` torch intra-op threads (default 1, ``lmdm.threads``: as
fast for the bundled model and robust to a busy machine), set around the block on the thread
that computes it and restored after; ``threads=None`` leaves torch's setting alone.

``device`` / ``dtype`` (lmdm.model.placement): where the DiT, its KV cache, the sampler and the
codec run, e.g. ``LiveSession(model, device="cuda")`` (bfloat16 weights by default there; the
model is moved in place, as ``nn.Module.to`` does). Default: where the model already is (a loaded
model: the CPU in float32). Audio leaves the device once per block; the seed draws the same noise
on every device.

``block_frames``: play blocks of that many latent frames instead of the model's own, one of the
lengths it was trained on (``model.config.geometries``; the bundled model has only its 25 = 1 s;
recipes/default/lmdm_blocks.toml trains 25 and 12 = 0.48 s), e.g. ``LiveSession(model,
block_frames=12)``: a change is heard sooner, each block costs a little more per second of audio
(docs/play_with_others.md, "Shorter blocks").

The modules, in the order a setter's value travels:

    values.py        Settings, SessionStats, normalise_prompt and the checks every setter runs first
    live_session.py  LiveSession: queued changes, hooks, stats, the prompt and knobs, the block loop
    clocked.py       ClockControls: set_tempo, set_clock_beat, set_sketch (mixed into LiveSession)
    player.py        PlayerControls: feed_input, set_jam, set_mix_input, set_delay (mixed into LiveSession)
    inputs.py        BlockInputs: the clock, sketches and jam mode, and each block's accomp/sketch/clock tensors
    rewind.py        RewindHistory, snapshot/restore: the newest blocks' start states; RewindControls:
                     rewind, nudge, hurry (mixed into LiveSession)
    landing.py       LandingControls: landing(fraction), changes heard from a sample inside a block
                     (the language's bar lines; mixed into LiveSession)
"""

from lmdm.session.inputs import BlockInputs
from lmdm.session.live_session import Hook, LiveSession, log
from lmdm.session.rewind import REWIND_BLOCKS, RewindHistory
from lmdm.session.values import (
    FEATURES,
    JAM_FOLLOW,
    MAX_CFG,
    MAX_STEPS,
    PromptSpec,
    SessionStats,
    Settings,
    normalise_prompt,
)

__all__ = [
    "FEATURES", "JAM_FOLLOW", "MAX_CFG", "MAX_STEPS", "REWIND_BLOCKS", "BlockInputs", "Hook", "LiveSession", "PromptSpec",
    "RewindHistory", "SessionStats", "Settings", "log", "normalise_prompt",
]
