"""Mini-notation patterns: text -> a function of cycle number -> events -> per-frame arrays.

As in Strudel, a pattern is something you *query*: ``pattern.query(cycle)`` gives the events of
that cycle (one cycle = one bar), each with a start and a duration inside the cycle as exact
fractions. Alternation ``<a b>`` picks an entry by cycle number, so nothing needs to remember
where playback is; the interpreter just asks for the cycles a block covers and ``render`` turns
the events into one value per latent frame for the model.

The tree is four node types: ``Atom`` (one value), ``Rest``, ``Seq`` (children sharing a span by
weight), ``Alt`` (one child per cycle) and ``Fast`` (a child repeated n times inside its span).
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Union

import attrs
import numpy as np
from lark import Lark, Transformer, v_args
from lark.exceptions import UnexpectedInput, VisitError

from lmdm_dsl.errors import DSLError, from_lark

KINDS = ("melody", "rhythm", "loudness")

MAX_SOURCE_CHARS = 1000
MAX_DEPTH = 16  # nested [ ] and < >
MAX_REPEAT = 64  # for *n, !n and @w
MAX_EVENTS_PER_CYCLE = 1024

_PITCH_CLASSES = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
DEFAULT_OCTAVE = 4  # "c" alone is c4 = MIDI 60


# --- values ----------------------------------------------------------------------------------


@attrs.frozen
class Event:
    """One event of one cycle: starts at ``start`` and lasts ``duration`` (fractions of the cycle)."""

    start: Fraction
    duration: Fraction
    value: float  # MIDI pitch (melody), 1 (rhythm hit) or a level in 0..1 (loudness)

    @property
    def end(self) -> Fraction:
        return self.start + self.duration


@attrs.frozen
class Atom:
    value: float


@attrs.frozen
class Rest:
    pass


@attrs.frozen
class Seq:
    children: tuple["Node", ...]
    weights: tuple[Fraction, ...]


@attrs.frozen
class Alt:
    children: tuple["Node", ...]


@attrs.frozen
class Fast:
    child: "Node"
    factor: int


Node = Union[Atom, Rest, Seq, Alt, Fast]


@attrs.frozen
class Pattern:
    """A parsed mini-notation pattern for one sketch kind; ``source`` is the text it came from."""

    kind: str
    source: str
    root: Node = attrs.field(repr=False)

    def query(self, cycle: int) -> list[Event]:
        """The events of cycle ``cycle`` (0 = the first bar), in time order."""
        out: list[Event] = []
        _collect(self.root, cycle, Fraction(0), Fraction(1), out)
        return out

    @property
    def period(self) -> int:
        """Cycles after which the pattern repeats: ``query(c) == query(c + period)``."""
        return period(self.root)


# --- the pure functions over the tree --------------------------------------------------------


def _collect(node: Node, cycle: int, begin: Fraction, length: Fraction, out: list[Event]) -> None:
    """Append the events of ``node``, queried at its own ``cycle``, squeezed into [begin, begin+length)."""
    if isinstance(node, Atom):
        out.append(Event(begin, length, node.value))
    elif isinstance(node, Seq):
        total = sum(node.weights)
        for child, weight in zip(node.children, node.weights):
            span = length * weight / total
            _collect(child, cycle, begin, span, out)
            begin += span
    elif isinstance(node, Alt):
        count = len(node.children)
        _collect(node.children[cycle % count], cycle // count, begin, length, out)
    elif isinstance(node, Fast):
        span = length / node.factor
        for k in range(node.factor):
            _collect(node.child, cycle * node.factor + k, begin + k * span, span, out)


def period(node: Node) -> int:
    if isinstance(node, Seq):
        return math.lcm(*(period(c) for c in node.children))
    if isinstance(node, Alt):
        return len(node.children) * math.lcm(*(period(c) for c in node.children))
    if isinstance(node, Fast):
        inner = period(node.child)
        return inner // math.gcd(inner, node.factor)
    return 1


def max_events(node: Node) -> int:
    """The most events any one cycle of ``node`` can produce."""
    if isinstance(node, Atom):
        return 1
    if isinstance(node, Seq):
        return sum(max_events(c) for c in node.children)
    if isinstance(node, Alt):
        return max(max_events(c) for c in node.children)
    if isinstance(node, Fast):
        return node.factor * max_events(node.child)
    return 0


def render(pattern: Pattern, frames_per_cycle: float, n_frames: int, start_cycle: float = 0.0) -> np.ndarray:
    """Events -> one float32 value per frame, for ``n_frames`` frames from ``start_cycle`` on.

    Frame ``j`` starts at cycle ``start_cycle + j / frames_per_cycle``.

    * melody: the MIDI pitch of the note sounding at the frame's start, 0 where it rests;
    * rhythm: 1 on the frame in which a hit starts, 0 elsewhere;
    * loudness: the level sounding at the frame's start, 0 where it rests.

    A note or level shorter than a frame still claims the frame it starts in.
    """
    out = np.zeros(max(n_frames, 0), dtype=np.float32)
    if n_frames <= 0:
        return out
    eps = 1e-9
    end_cycle = start_cycle + n_frames / frames_per_cycle
    for cycle in range(math.floor(start_cycle + eps), math.ceil(end_cycle - eps)):
        for event in pattern.query(cycle):
            first = (cycle + float(event.start) - start_cycle) * frames_per_cycle
            last = (cycle + float(event.end) - start_cycle) * frames_per_cycle
            onset = math.floor(first + eps)
            if pattern.kind == "rhythm":
                if 0 <= onset < n_frames:
                    out[onset] = 1.0
                continue
            lo, hi = max(math.ceil(first - eps), 0), min(math.ceil(last - eps), n_frames)
            if lo < hi:
                out[lo:hi] = event.value
            elif 0 <= onset < n_frames:
                out[onset] = event.value
    return out


def midi_of(name: str) -> int:
    """``"c4"`` -> 60, ``"a4"`` -> 69, ``"eb3"`` -> 51, ``"f#"`` -> 66 (octave 4 when omitted)."""
    letter, rest = name[0].lower(), name[1:]
    shift = 0
    if rest[:1] in ("#", "s"):
        shift, rest = 1, rest[1:]
    elif rest[:1] == "b":
        shift, rest = -1, rest[1:]
    octave = int(rest) if rest else DEFAULT_OCTAVE
    return 12 * (octave + 1) + _PITCH_CLASSES[letter] + shift


# --- parsing ---------------------------------------------------------------------------------

_PARSER = Lark((Path(__file__).parent / "mini.lark").read_text(), parser="lalr", propagate_positions=True)
_NAMES = {
    "NOTE": "a note (c4, eb3)",
    "NUMBER": "a number",
    "HIT": "x",
    "REST": "~",
}


@attrs.frozen
class _Entry:
    """One step of a sequence before it becomes a node: the node, its weight, where it was."""

    node: Node
    weight: Fraction
    column: int  # 1-based column of the step, for errors


@v_args(inline=True)
class _ToNodes(Transformer):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def start(self, entries: list[_Entry]) -> Node:
        return _as_seq(entries)

    def sequence(self, *steps: list[_Entry]) -> list[_Entry]:
        return [entry for step in steps for entry in step]

    def group(self, entries: list[_Entry]) -> Node:
        return _as_seq(entries)

    def alternation(self, entries: list[_Entry]) -> Node:
        for entry in entries:
            if entry.weight != 1:
                raise DSLError("@ has no meaning inside < >; each entry lasts one cycle", 1, entry.column)
        return Alt(tuple(e.node for e in entries))

    @v_args(meta=True)
    def step(self, meta, children: list) -> list[_Entry]:
        node, count, weight = children[0], 1, Fraction(1)
        for name, amount in children[1:]:
            if name == "fast" and amount > 1:
                node = Fast(node, amount)
            elif name == "replicate":
                count *= amount
            elif name == "elongate":
                weight *= amount
        if count > MAX_REPEAT or weight > MAX_REPEAT:
            raise DSLError(f"a step repeats or widens at most {MAX_REPEAT} times", 1, meta.column)
        return [_Entry(node, weight, meta.column)] * count

    # atoms, checked against the sketch kind

    def note(self, token) -> Node:
        if self.kind != "melody":
            raise DSLError(f"note {token} has no meaning in a {self.kind} sketch; {_hint(self.kind)}", 1, token.column)
        pitch = midi_of(str(token))
        if not 0 < pitch <= 127:
            raise DSLError(f"note {token} is outside MIDI 1-127", 1, token.column)
        return Atom(pitch)

    def number(self, token) -> Node:
        value = float(token)
        if self.kind == "melody" and value == int(value) and 0 < value <= 127:
            return Atom(int(value))
        if self.kind == "loudness" and 0 <= value <= 1:
            return Atom(value)
        raise DSLError(f"{token} has no meaning in a {self.kind} sketch; {_hint(self.kind)}", 1, token.column)

    def hit(self, token) -> Node:
        if self.kind != "rhythm":
            raise DSLError(f"x has no meaning in a {self.kind} sketch; {_hint(self.kind)}", 1, token.column)
        return Atom(1)

    def rest(self, token) -> Node:
        return Rest()

    # modifiers: (name, amount)

    def fast(self, token) -> tuple[str, int]:
        return "fast", _whole(token, "*")

    def replicate(self, token=None) -> tuple[str, int]:
        return "replicate", 2 if token is None else _whole(token, "!")

    def elongate(self, token) -> tuple[str, Fraction]:
        weight = Fraction(str(token))
        if not 0 < weight <= MAX_REPEAT:
            raise DSLError(f"@ needs a weight above 0 and at most {MAX_REPEAT}, got {token}", 1, token.column)
        return "elongate", weight


def _whole(token, symbol: str) -> int:
    value = float(token)
    if value != int(value) or not 1 <= value <= MAX_REPEAT:
        raise DSLError(f"{symbol} needs a whole number from 1 to {MAX_REPEAT}, got {token}", 1, token.column)
    return int(value)


def _hint(kind: str) -> str:
    return {
        "melody": "use notes (c4 e4 g4) or MIDI numbers 1-127, ~ for a rest",
        "rhythm": "use x for a hit and ~ for a rest",
        "loudness": "use levels from 0 to 1, ~ for silence",
    }[kind]


def _as_seq(entries: list[_Entry]) -> Node:
    if len(entries) == 1 and entries[0].weight == 1:
        return entries[0].node
    return Seq(tuple(e.node for e in entries), tuple(e.weight for e in entries))


def parse_pattern(text: str, kind: str) -> Pattern:
    """Mini-notation text -> Pattern, or DSLError with a column inside ``text`` (line 1)."""
    if kind not in KINDS:
        raise DSLError(f"unknown sketch kind {kind!r}; use one of {', '.join(KINDS)}", 1, 1)
    if len(text) > MAX_SOURCE_CHARS:
        raise DSLError(f"a pattern is at most {MAX_SOURCE_CHARS} characters", 1, MAX_SOURCE_CHARS + 1)
    if not text.strip():
        raise DSLError(f"the {kind} pattern is empty; {_hint(kind)}", 1, 1)
    depth = 0
    for column, char in enumerate(text, start=1):
        depth += (char in "[<") - (char in "]>")
        if depth > MAX_DEPTH:
            raise DSLError(f"patterns nest at most {MAX_DEPTH} deep", 1, column)
    try:
        root = _ToNodes(kind).transform(_PARSER.parse(text))
    except UnexpectedInput as error:
        raise from_lark(error, text, _PARSER, _NAMES) from None
    except VisitError as error:
        if isinstance(error.orig_exc, DSLError):
            raise error.orig_exc from None
        raise
    if max_events(root) > MAX_EVENTS_PER_CYCLE:
        raise DSLError(f"the pattern makes more than {MAX_EVENTS_PER_CYCLE} events per cycle", 1, 1)
    return Pattern(kind, text, root)
