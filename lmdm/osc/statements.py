"""OSC messages -> statements of the lmdm language.

Every typed address is a thin spelling of one statement: ``/lmdm/tempo 124.0`` becomes
``tempo 124``, ``/lmdm/prompt "acid" 3`` becomes ``prompt "acid" over 3 blocks``. The OSC layer
checks only what the OSC encoding can get wrong (how many arguments, of which type, finite
numbers); what the values *mean* (is 500 bpm allowed?) is checked in one place, the language.

Argument types, in OSC type-tag letters:
  ``s`` text; ``f`` a number (an OSC int is accepted too); ``i`` a whole number (a float
  such as 6.0 is accepted, 6.5 is not). OSC booleans are not numbers.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import attrs
import numpy as np

from lmdm_dsl.mini import KINDS as SKETCH_KINDS
from lmdm_dsl.values import JAM_FOLLOW


class OscArgumentError(ValueError):
    """The arguments do not fit the address; the message is the reply text (``error: ...``)."""


@attrs.frozen
class Param:
    name: str
    tag: str = attrs.field(validator=attrs.validators.in_(("s", "f", "i")))
    optional: bool = False

    def __str__(self) -> str:
        return f"[{self.name}:{self.tag}]" if self.optional else f"{self.name}:{self.tag}"


@attrs.frozen
class Route:
    """One OSC address, its parameters, and how its arguments spell a statement."""

    address: str
    params: tuple[Param, ...]
    build: Callable[..., str]
    doc: str

    @property
    def signature(self) -> str:
        return " ".join(str(p) for p in self.params) or "(no arguments)"

    def statement(self, args: Sequence[object]) -> str:
        required = sum(not p.optional for p in self.params)
        if not required <= len(args) <= len(self.params):
            raise self._mismatch(args)
        values = []
        for param, arg in zip(self.params, args):
            value = convert(arg, param.tag)
            if value is None:
                raise self._mismatch(args)
            values.append(value)
        return self.build(*values)

    def _mismatch(self, args: Sequence[object]) -> OscArgumentError:
        got = ", ".join(describe(a) for a in args) or "no arguments"
        return OscArgumentError(f"error: {self.address} takes {self.signature}; got {got}")


def convert(arg: object, tag: str) -> str | None:
    """``arg`` as statement text for a parameter of type ``tag``, or None if it does not fit."""
    if isinstance(arg, bool):
        return None
    if tag == "s":
        return arg if isinstance(arg, str) else None
    if not isinstance(arg, (int, float)) or not math.isfinite(arg):
        return None
    if tag == "i":
        return str(int(arg)) if float(arg).is_integer() else None
    return number(arg)


def number(value: float) -> str:
    """A number as the language writes it: ``124``, ``0.6``, ``-1.25`` (no exponent).

    Floats keep 7 significant digits, the precision of an OSC float32: the 0.6 a client sent
    arrives as 0.60000002384 and is written back as 0.6.
    """
    if isinstance(value, int):
        return str(value)
    return np.format_float_positional(float(f"{value:.7g}"), trim="-")


def quote(text: str) -> str:
    """``text`` as a language string literal: in quotes, with ``\\`` and ``"`` escaped.

    Line breaks and other control characters become spaces (a string cannot span lines).
    """
    flat = "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in text)
    return '"' + flat.replace("\\", "\\\\").replace('"', '\\"') + '"'


def describe(arg: object) -> str:
    """An argument with its OSC type letter, for error messages: ``'fast':s``, ``3:i``."""
    if isinstance(arg, bool):
        tag = "T" if arg else "F"
    elif isinstance(arg, str):
        tag = "s"
    elif isinstance(arg, int):
        tag = "i"
    elif isinstance(arg, float):
        tag = "f"
    elif isinstance(arg, bytes):
        return f"<{len(arg)}-byte blob>:b"
    elif arg is None:
        tag = "N"
    else:
        tag = type(arg).__name__
    shown = repr(arg)
    return f"{shown[:40]}...:{tag}" if len(shown) > 40 else f"{shown}:{tag}"


def _prompt(text: str, glide: str | None = None) -> str:
    return f"prompt {quote(text)}" + (f" over {glide} blocks" if glide is not None else "")


def _sketch(kind: str, pattern: str | None = None) -> str:
    """``/lmdm/sketch melody "c4 e4"`` -> ``sketch melody "c4 e4"``; "off" as kind or pattern turns off."""
    word = kind.strip().lower()
    if word == "off" and pattern is None:
        return "sketch off"
    if word not in SKETCH_KINDS:  # the language's own lists: OSC messages become its statements
        raise OscArgumentError(f"error: /lmdm/sketch: the kind is melody, rhythm, loudness or off; got {kind!r}")
    if pattern is None or pattern.strip().lower() == "off":
        return f"sketch {word} off"
    return f"sketch {word} {quote(pattern)}"


def _jam_follow(mode: str) -> str:
    """``/lmdm/jam/follow beat`` -> ``jam beat``."""
    word = mode.strip().lower()
    if word not in JAM_FOLLOW:
        raise OscArgumentError(f"error: /lmdm/jam/follow: the mode is key, beat or listen; got {mode!r}")
    return f"jam {word}"


def _delay(blocks: str, strength: str | None = None, feedback: str | None = None, mix: str | None = None) -> str:
    words = [f"delay {blocks} blocks"]
    for name, value in (("strength", strength), ("feedback", feedback), ("mix", mix)):
        if value is not None:
            words.append(f"{name} {value}")
    return " ".join(words)


def _jam(on: str) -> str:
    return "jam off" if int(on) == 0 else "jam on"


ROUTES: dict[str, Route] = {
    route.address: route
    for route in (
        Route("/lmdm/eval", (Param("code", "s"),), lambda code: code,
              "run any statement(s) of the language, as typed at the REPL"),
        Route("/lmdm/prompt", (Param("text", "s"), Param("glide_blocks", "f", optional=True)), _prompt,
              'prompt "text", or glide to it: prompt "text" over N blocks'),
        Route("/lmdm/tempo", (Param("bpm", "f"),), lambda bpm: f"tempo {bpm}", "tempo BPM"),
        Route("/lmdm/steps", (Param("steps", "i"),), lambda n: f"steps {n}", "denoising steps per block"),
        Route("/lmdm/cfg", (Param("scale", "f"),), lambda s: f"cfg {s}", "classifier-free guidance scale"),
        Route("/lmdm/seed", (Param("seed", "i"),), lambda n: f"seed {n}", "random seed"),
        Route("/lmdm/sketch", (Param("kind", "s"), Param("pattern", "s", optional=True)), _sketch,
              'sketch melody "c4 e4 g4 ~" (kind melody|rhythm|loudness); no pattern or "off": that sketch off; kind "off": all off'),
        Route("/lmdm/delay", (Param("blocks", "f"), Param("strength", "f", optional=True), Param("feedback", "f", optional=True),
                              Param("mix", "f", optional=True)), _delay,
              "delay N blocks [strength s] [feedback f] [mix m]: turn the generative delay on or change it"),
        Route("/lmdm/delay/off", (), lambda: "delay off", "turn the generative delay off"),
        Route("/lmdm/delay/strength", (Param("strength", "f"),), lambda s: f"delay strength {s}",
              "generative delay strength"),
        Route("/lmdm/delay/feedback", (Param("feedback", "f"),), lambda f: f"delay feedback {f}", "generative delay feedback"),
        Route("/lmdm/delay/mix", (Param("mix", "f"),), lambda m: f"delay mix {m}", "generative delay wet level"),
        Route("/lmdm/delay/prompt", (Param("text", "s"),), lambda text: f"delay prompt {quote(text)}",
              "the timbre prompt of the delay's repeats"),
        Route("/lmdm/jam", (Param("on", "i"),), _jam, "jam on (1) / jam off (0): whether the model follows the input"),
        Route("/lmdm/jam/follow", (Param("mode", "s"),), _jam_follow,
              "jam key / jam beat / jam listen: follow the input's beat and notes (sketches), its beat only, or hear its latents"),
        Route("/lmdm/reset", (), lambda: "reset", "forget the past: start a fresh stream"),
        Route("/lmdm/status", (), lambda: "status", "reply with the session status"),
    )
}


def statement_for(address: str, args: Sequence[object]) -> str:
    """The statement an OSC message stands for. Raises ``KeyError`` for an unknown address and
    ``OscArgumentError`` for arguments that do not fit."""
    return ROUTES[address].statement(args)
