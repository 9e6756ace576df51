"""The statements that act on the session at once, and scenes, applied.

The knobs (``steps``, ``cfg``, ``seed``, ``regime``), ``prompt``, ``reset``, ``jam`` and ``record``
go straight to the session's setters (or the recorder); ``status`` reads the session and the
interpreter's state back in one line; ``scene`` stores a body and ``play`` applies it, statement
by statement, through ``Interpreter._apply`` (scenes may play scenes, within ``MAX_PLAY_DEPTH`` and
a shared ``Budget`` of ``MAX_PLAYED`` statements).

Each handler takes the ``Interpreter``, its statement and its ``Context``, and returns its
message(s); it raises ``Refused`` when the statement cannot be applied here.
"""

from __future__ import annotations

import difflib
import os
from typing import TYPE_CHECKING

import attrs

from lmdm_dsl import handlers_midi
from lmdm_dsl import values as v
from lmdm_dsl.clock import EPS, first_block_at_or_after
from lmdm_dsl.context import Budget, Context, Refused

if TYPE_CHECKING:
    from lmdm_dsl.interpreter import Interpreter


def prompt(interp: Interpreter, s: v.Prompt, c: Context) -> str:
    over = 0 if s.over is None else first_block_at_or_after(interp._seconds(s.over), interp.session.block_seconds)
    interp.session.set_prompt(s.session_prompt, over_blocks=over)
    return s.to_source() + (f" ({over} blocks)" if s.over is not None else "")


def steps(interp: Interpreter, s: v.Steps, c: Context) -> str:
    interp.session.set_steps(s.n)
    return s.to_source()


def cfg(interp: Interpreter, s: v.Cfg, c: Context) -> str:
    interp.session.set_cfg(s.scale)
    return s.to_source()


def seed(interp: Interpreter, s: v.Seed, c: Context) -> str:
    interp.session.set_seed(s.seed)
    return s.to_source()


def regime(interp: Interpreter, s: v.Regime, c: Context) -> str:
    interp.session.set_regime(s.name)
    return s.to_source()


def reset(interp: Interpreter, s: v.Reset, c: Context) -> str:
    interp.session.reset()
    return "reset: history and KV cache cleared"


def status(interp: Interpreter, s: v.Status, c: Context) -> str:
    stats = interp.session.stats
    with interp._lock:
        clock, queued, scenes = interp._clock, len(interp._schedule), sorted(interp._scenes)
        sketches, delay = sorted(interp._sketches), interp._delay
    bar = int(clock.cycle_at(c.now, interp.session.block_seconds) + EPS) + 1
    parts = [
        f"block {stats.blocks}",
        f"rtf {stats.real_time_factor:.2f}",
        f"prompt {v.prompt_shown(str(stats.prompt))}",
        f"tempo {v.num(clock.bpm)} BPM (bar {bar})",
        f"regime {stats.regime}",
        f"steps {stats.steps}",
        f"cfg {v.num(stats.cfg)}",
        f"queued {queued}",
    ]
    if sketches:
        parts.append("sketch " + ", ".join(sketches))
    if delay is not None:
        parts.append(delay.to_source())
    if scenes:
        parts.append("scenes " + ", ".join(scenes))
    midi = handlers_midi.midi_status(interp)
    if midi:
        parts.append("midi " + midi)
    return "status: " + " | ".join(parts)


def record_start(interp: Interpreter, s: v.RecordStart, c: Context) -> str:
    if interp.recorder is None:
        raise Refused("recording is not available here")
    if os.path.exists(s.path):
        raise Refused(f"{s.path} already exists; record to a new file")
    interp.recorder.start(s.path)
    return f"recording to {s.path}"


def record_stop(interp: Interpreter, s: v.RecordStop, c: Context) -> str:
    if interp.recorder is None:
        raise Refused("recording is not available here")
    interp.recorder.stop()
    return "recording stopped"


def jam(interp: Interpreter, s: v.Jam, c: Context) -> str:
    follow = s.follow or getattr(interp.session.stats, "jam_follow", "") or "listen"
    interp._require("jam" if follow == "listen" else "sketch")
    interp.session.set_jam(s.on, follow=s.follow)
    if not s.on:
        return s.to_source() + " (the input is not given to the model)"
    return s.to_source() + {"key": " (the model follows the input's beat and notes)", "beat": " (the model follows the input's beat)",
                            "listen": " (the model hears the input)"}.get(follow, "")


def scene(interp: Interpreter, s: v.SceneDef, c: Context) -> str:
    with interp._lock:
        if s.name not in interp._scenes and len(interp._scenes) >= v.MAX_SCENES:
            raise Refused(f"too many scenes (at most {v.MAX_SCENES}); define one again to replace it")
        interp._scenes[s.name] = s.body
    count = len(s.body)
    return f"scene {s.name} defined ({count} statement{'' if count == 1 else 's'})"


def play(interp: Interpreter, s: v.Play, c: Context) -> list[str]:
    with interp._lock:
        body, known = interp._scenes.get(s.name), sorted(interp._scenes)
    if body is None:
        close = difflib.get_close_matches(s.name, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise Refused(f"no scene named '{s.name}'{hint}")
    if s.name in c.playing:
        raise Refused(f"scene '{s.name}' plays itself (via {' -> '.join(c.playing + (s.name,))})")
    if len(c.playing) >= v.MAX_PLAY_DEPTH:
        raise Refused(f"scenes play scenes at most {v.MAX_PLAY_DEPTH} deep")
    budget = Budget() if c.budget is None else c.budget
    inner = attrs.evolve(c, playing=c.playing + (s.name,), budget=budget)
    messages = [f"play {s.name}"]
    for statement in body:
        if budget.left <= 0:
            if not budget.told:
                budget.told = True
                messages.append(
                    f"error: a play runs at most {v.MAX_PLAYED} statements, its scenes' included; "
                    f"the rest of scene '{s.name}' is skipped"
                )
            break
        budget.left -= 1
        messages += interp._apply(statement, inner)
    return messages
