"""How long a live change takes to be heard: from the call to its first changed sample at the device.

    python -m lmdm.eval.latency --model default --trials 20        # on the default device (JACK dummy here)

Each trial plays a fresh ``LiveSession`` through the ``AudioEngine`` as ``lmdm live`` does, makes
one change at a random moment (a prompt, or a CFG knob), and keeps playing. A second session with
the same seed renders the same stream offline without the change; the first sample where the two
part is the change's first sample. A thread polls the engine's count of frames played (``heard``:
what the device took from the ring) against the wall clock; the change is heard when the device
takes that sample, plus the device's own output latency as PortAudio reports it. Printed: each
trial's latency, and the median, p95 and max over all trials.

``--hold SECONDS`` measures the other half of issue #18's goal instead: one session plays that
long and gets a change every ``--every`` seconds (a prompt and a CFG value in turn, as a performer
turning a knob), and the engine's counts are printed: changes, splices, late splices, underruns
(the ring ran dry) and starved frames. Real time holds when underruns stay 0.

``--bar`` measures the quantised half: ``at next bar: prompt ...`` typed into a playing set (the
language's interpreter on the session, as ``lmdm live`` runs it) at a random moment and tempo; the
first changed sample of what the device played against the bar line the reply names (0 samples
off: it landed exactly), and how long before that bar line it was typed.

Pure parts (tested without a device): ``first_change``, ``heard_at`` and ``aimed_block``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np

from lmdm.audio.config import SPLICE_STEPS
from lmdm.render import add_model_arguments, resolve_model

CHANGES = ("prompt", "cfg")
PROMPT = "deep house with warm chords"  # every session's prompt
LAND_SAMPLES = 8  # --bar: a change first heard this few samples after its bar line still landed on it
POLL_SECONDS = 0.002  # how often the engine's frames played are read


def first_change(played: np.ndarray, reference: np.ndarray, tol: float = 1e-4) -> int | None:
    """The first sample index where ``played`` and ``reference`` differ by more than ``tol``
    (None: they agree over their common length)."""
    n = min(len(played), len(reference))
    differ = np.flatnonzero(np.abs(played[:n] - reference[:n]).reshape(n, -1).max(axis=1) > tol)
    return int(differ[0]) if len(differ) else None


def heard_at(sample: float, timeline: Sequence[tuple[float, int]]) -> float | None:
    """The wall time at which the device took stream sample ``sample``, from (time, frames played)
    readings in time order: the first reading past it, interpolated with the one before (None:
    not played yet)."""
    for (t0, f0), (t1, f1) in zip(timeline, timeline[1:]):
        if f1 > sample >= f0:
            return t0 + (t1 - t0) * (sample - f0) / (f1 - f0)
    return None


def _engine(live: Any, produce: Any, *, device: Any, ahead: float, splice: bool, margin_ms: float,
            splice_steps: int | None) -> Any:
    """The audio engine ``lmdm live`` would play ``live`` through, with these settings."""
    from lmdm.audio import AudioEngine, EngineConfig

    config = EngineConfig(model_rate=live.sample_rate, channels=live.channels, device=device,
                          ahead_blocks=max(1.0, ahead / live.block_seconds), splice=splice, splice_margin_ms=margin_ms,
                          splice_steps=splice_steps if splice else None)
    return AudioEngine(produce, config, splicer=live if splice else None)


def _kept(live: Any) -> tuple[Callable[[], np.ndarray], list[np.ndarray]]:
    """A producer of ``live``'s blocks for the engine, and the list it keeps every block it made in."""
    blocks: list[np.ndarray] = []

    def produce() -> np.ndarray:
        block = live.next_block()
        blocks.append(block)
        return block

    return produce, blocks


@attrs.frozen
class Trial:
    change: str
    at_block: int  # the block being generated when the change was made
    latency_ms: float  # from the call to the first changed sample at the device


def trial(model: Any, change: str, *, seed: int, wait_s: float, after_s: float, threads: int, device: Any = None,
          ahead: float = 1.0, splice: bool = False, margin_ms: float = 150.0, splice_steps: int | None = SPLICE_STEPS) -> Trial:
    """One change during play, measured (see the module's docstring). ``splice``: the engine splices
    the change into the audio already made (EngineConfig.splice; the remade block in ``splice_steps``
    sampler steps if given); what was played is then read back from the engine's recording, which
    holds it as heard."""
    import tempfile

    import soundfile as sf

    from lmdm.session import LiveSession
    from lmdm.sync.heard import engine_heard

    def session() -> LiveSession:
        return LiveSession(model, prompt=PROMPT, seed=seed, threads=threads)

    live = session()
    produce, blocks = _kept(live)
    engine = _engine(live, produce, device=device, ahead=ahead, splice=splice, margin_ms=margin_ms, splice_steps=splice_steps)
    folder = tempfile.TemporaryDirectory(prefix="lmdm-latency-")
    recording = f"{folder.name}/played.wav"
    timeline: list[tuple[float, int]] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            timeline.append((time.perf_counter(), round(engine_heard(engine) * live.sample_rate)))
            time.sleep(POLL_SECONDS)

    with engine:
        if splice:
            engine.record(recording, subtype="FLOAT")
        poller = threading.Thread(target=poll, name="lmdm-latency-poll", daemon=True)
        poller.start()
        time.sleep(wait_s)
        at_block = live.block_index
        called = time.perf_counter()
        if change == "prompt":
            live.set_prompt("ambient glass choir, slow")
        else:
            live.set_cfg(1.0 if live.settings.cfg != 1.0 else 4.0)
        time.sleep(after_s)
        output_latency = engine.output_latency()
        done.set()
        poller.join()
    if splice:
        played = sf.read(recording, dtype="float32", always_2d=True)[0]
    else:
        played = np.concatenate(blocks)
    folder.cleanup()
    reference = session().render(len(played) / live.sample_rate)
    sample = first_change(played, reference)
    if sample is None:
        raise RuntimeError("the change was never heard: the stream did not change")
    heard = heard_at(sample, timeline)
    if heard is None:
        raise RuntimeError(f"the changed sample {sample} was not played within {after_s:g} s")
    return Trial(change, at_block, (heard + output_latency - called) * 1000)


@attrs.frozen
class Held:
    seconds: float  # audio played
    changes: int
    splices: int
    late_splices: int  # remade too late for their block: it played out as it was
    underruns: int
    starved_frames: int


def hold(model: Any, *, seconds: float, every: float, seed: int, threads: int, device: Any = None, ahead: float = 1.0,
         splice: bool = False, margin_ms: float = 150.0, splice_steps: int | None = SPLICE_STEPS) -> Held:
    """One session played ``seconds`` with a change every ``every`` seconds (see the module's docstring)."""
    from lmdm.session import LiveSession

    live = LiveSession(model, prompt=PROMPT, seed=seed, threads=threads)
    prompts = ("ambient glass choir, slow", PROMPT)
    engine = _engine(live, live.next_block, device=device, ahead=ahead, splice=splice, margin_ms=margin_ms,
                     splice_steps=splice_steps)
    changes = 0
    with engine:
        start = time.perf_counter()
        while (now := time.perf_counter() - start) < seconds:
            time.sleep(min(every, seconds - now))
            if time.perf_counter() - start >= seconds:
                break
            if changes % 2 == 0:
                live.set_prompt(prompts[(changes // 2) % 2])
            else:
                live.set_cfg(1.5 if live.settings.cfg != 1.5 else 3.0)
            changes += 1
        stats = engine.stats()
    return Held(stats.frames_played / stats.device_rate, changes, stats.splices, stats.late_splices,
                stats.underruns, stats.starved_frames)


@attrs.frozen
class BarTrial:
    tempo: float
    typed_before_ms: float  # from typing `at next bar:` to the device taking the bar line's sample
    bar_sample: int  # the bar line the language aimed at (its reply), in stream samples
    first_changed: int  # the first sample of what was played that differs from the stream without it
    underruns: int  # of the engine while it played (0: the device played the stream as made)

    @property
    def off_samples(self) -> int:
        return self.first_changed - self.bar_sample

    @property
    def exact(self) -> bool:
        """Heard from the bar line's sample: nothing changed before it, and within LAND_SAMPLES after
        (the fade's first samples may agree with the old stream by chance)."""
        return 0 <= self.off_samples < LAND_SAMPLES


def aimed_block(reply: str) -> float:
    """Where the language's reply says a scheduled statement lands, in blocks: "at block 6 + 0.25: …" -> 6.25."""
    where = reply.split("at block ", 1)[1].split(":", 1)[0]
    return sum(float(part) for part in where.split(" + "))


def bar_trial(model: Any, *, seed: int, wait_s: float, tempo: float, threads: int, device: Any = None, ahead: float = 1.0) -> BarTrial:
    """``at next bar: prompt ...`` typed into a set while it plays through the engine (as ``lmdm live``
    does), at a random moment: where its change is heard, against the bar line the reply names."""
    from lmdm.session import LiveSession
    from lmdm.sync.heard import engine_heard
    from lmdm_dsl import Interpreter

    def session() -> tuple[LiveSession, Interpreter]:
        live = LiveSession(model, prompt=PROMPT, seed=seed, threads=threads)
        interp = Interpreter(live)
        interp.run(f"tempo {tempo!r}")  # bar 1 at block 0
        return live, interp

    live, interp = session()
    produce, blocks = _kept(live)
    engine = _engine(live, produce, device=device, ahead=ahead, splice=False, margin_ms=150.0, splice_steps=None)
    with engine:
        time.sleep(wait_s)
        reply = interp.run('at next bar: prompt "ambient glass choir, slow"')[0]
        heard = engine_heard(engine) * live.sample_rate  # stream samples the device had taken when it was typed
        bar_s = interp.clock.bar_seconds  # bar 1 at 0: the reply (rounded to 0.001 block) names the line
        bar = round(round(aimed_block(reply) * live.block_seconds / bar_s) * bar_s * live.sample_rate)
        time.sleep(max(0.0, (bar - heard) / live.sample_rate) + 2 * live.block_seconds)
        underruns = engine.stats().underruns
    played = np.concatenate(blocks)  # without splicing, what the device played (the engine counts any underrun)
    reference = session()[0].render(len(played) / live.sample_rate)
    first = first_change(played, reference, tol=0.0)
    if first is None:
        raise RuntimeError(f"the change was never heard ({reply})")
    return BarTrial(tempo, (bar - heard) / live.sample_rate * 1000, bar, first, underruns)


def summary(trials: Sequence[Trial]) -> dict[str, float]:
    ms = sorted(t.latency_ms for t in trials)
    return {"trials": len(ms), "median_ms": statistics.median(ms), "p95_ms": float(np.percentile(ms, 95)), "max_ms": ms[-1], "min_ms": ms[0]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lmdm.eval.latency", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default", help="'default' (the bundled model), a checkpoint directory, or tiny/small")
    p.add_argument("--trials", type=int, default=20, help="changes measured, each in its own session (default 20)")
    p.add_argument("--change", choices=CHANGES + ("both",), default="both", help="what changes (default both, in turn)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--ahead", type=float, default=1.0, help="seconds of audio generated ahead, as `lmdm live --ahead` (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--splice", action="store_true", help="splice each change into the audio already made (lmdm live --splice)")
    p.add_argument("--margin-ms", type=float, default=150.0, help="with --splice: how far ahead of the play position (default 150)")
    p.add_argument("--splice-steps", type=int, default=SPLICE_STEPS,
                   help=f"with --splice: the remade block's sampler steps at most (default {SPLICE_STEPS}, as lmdm live)")
    p.add_argument("--hold", type=float, default=None, metavar="SECONDS",
                   help="instead of trials: play one session this long with a change every --every seconds, print underruns")
    p.add_argument("--every", type=float, default=1.5, help="with --hold: seconds between changes (default 1.5)")
    add_model_arguments(p)
    p.add_argument("--bar", action="store_true",
                   help="instead: type `at next bar: prompt ...` into a playing set, print how far from the bar line it is heard")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    if not 1 <= a.trials <= 1000:
        p.error(f"--trials must be from 1 to 1000, got {a.trials}")
    if a.splice_steps < 1:
        p.error(f"--splice-steps must be at least 1, got {a.splice_steps}")
    if a.hold is not None and not (1 <= a.hold <= 3600 and 0.1 <= a.every <= a.hold):
        p.error(f"--hold must be 1 to 3600 s and --every 0.1 s to --hold, got {a.hold:g} and {a.every:g}")
    model = resolve_model(a.model, a.block_frames)
    if a.hold is not None:
        held = hold(model, seconds=a.hold, every=a.every, seed=a.seed, threads=a.threads, ahead=a.ahead, splice=a.splice,
                    margin_ms=a.margin_ms, splice_steps=a.splice_steps)
        if a.json:
            print(json.dumps(attrs.asdict(held), indent=2))
        else:
            print(f"{held.seconds:.1f} s played, {held.changes} changes: {held.splices} splices ({held.late_splices} late), "
                  f"{held.underruns} underruns, {held.starved_frames} starved frames")
        return 0
    rng = np.random.default_rng(a.seed)
    if a.bar:
        bars = []
        for i in range(a.trials):
            tempo = float(rng.uniform(60.0, 180.0))
            b = bar_trial(model, seed=a.seed + i, wait_s=float(rng.uniform(1.0, 4.0)), tempo=tempo, threads=a.threads, ahead=a.ahead)
            bars.append(b)
            if not a.json:
                print(f"trial {i + 1}: {b.tempo:.1f} BPM, typed {b.typed_before_ms:.0f} ms before its bar line: first changed sample "
                      f"{b.first_changed}, the bar line's {b.bar_sample} ({b.off_samples:+d})", flush=True)
        off = [abs(b.off_samples) for b in bars]
        report = {"model": a.model, "block_seconds": model.config.block_seconds, "ahead_seconds": a.ahead, "trials": len(bars),
                  "exact": sum(b.exact for b in bars), "max_off_samples": max(off), "underruns": sum(b.underruns for b in bars),
                  "typed_before_ms_min": min(b.typed_before_ms for b in bars), "trials_detail": [attrs.asdict(b) for b in bars]}
        return _report(a.json, report, f"{report['exact']} of {len(bars)} changes heard from their bar line's sample (max "
                       f"{report['max_off_samples']} samples off), typed {report['typed_before_ms_min']:.0f} ms or more before it; "
                       f"{report['underruns']} underruns")
    kinds = CHANGES if a.change == "both" else (a.change,)
    trials = []
    for i in range(a.trials):
        block_s = model.config.block_seconds
        t = trial(model, kinds[i % len(kinds)], seed=a.seed + i, wait_s=float(rng.uniform(2 * block_s, 3 * block_s)),
                  after_s=a.ahead + 3 * block_s, threads=a.threads, ahead=a.ahead, splice=a.splice, margin_ms=a.margin_ms,
                  splice_steps=a.splice_steps)
        trials.append(t)
        if not a.json:
            print(f"trial {i + 1}: {t.change} at block {t.at_block}: heard after {t.latency_ms:.0f} ms", flush=True)
    report = {"model": a.model, "block_seconds": model.config.block_seconds, "ahead_seconds": a.ahead,
              "splice_margin_ms": a.margin_ms if a.splice else None, "splice_steps": a.splice_steps if a.splice else None,
              **summary(trials),
              "trials_ms": [round(t.latency_ms, 1) for t in trials]}
    return _report(a.json, report, f"{report['trials']} changes, {report['block_seconds']:g} s blocks, {a.ahead:g} s ahead: heard "
                   f"after median {report['median_ms']:.0f} ms, p95 {report['p95_ms']:.0f} ms, max {report['max_ms']:.0f} ms")


def _report(as_json: bool, report: dict[str, Any], line: str) -> int:
    """The measurement as JSON, or its one summary line."""
    print(json.dumps(report, indent=2) if as_json else line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
