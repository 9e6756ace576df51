"""Text -> Lark tree -> statement values.

``parse(text)`` returns a Program (a tuple of statement values from ``values.py``) or raises one
``DSLError`` pointing at the first problem: a syntax error from Lark, or a value out of range
found while building the values (the caret then sits under the offending token). A text longer
than ``MAX_TEXT_CHARS`` or nesting bodies deeper than ``MAX_NESTING`` is refused before Lark
reads it (``check_size``).
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs
from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedInput, VisitError

from lmdm_dsl import values as v
from lmdm_dsl.errors import DSLError, from_lark, position_of
from lmdm_dsl.mini import parse_pattern

_PARSER = Lark(
    (Path(__file__).parent / "grammar.lark").read_text(),
    parser="lalr",
    propagate_positions=True,
    maybe_placeholders=True,
)
_NAMES = {
    "NUMBER": "a number",
    "STRING": 'a "quoted text"',
    "NAME": "a name",
    "UNIT": "bar, beat or block",
    "_NL": "end of line",
}
_STATEMENT = "a statement (tempo, prompt, sketch, delay, steps, at, in, every, play, …)"
_INTEGER = re.compile(r"-?[0-9]+\Z")
_ESCAPE = re.compile(r"\\(.)")


@attrs.frozen
class Located:
    """A top-level statement and where it starts in the text."""

    statement: object
    line: int
    column: int


@attrs.frozen
class _SpanAt:
    """A span and the position of its first token, until the statement using it is built."""

    span: v.Span
    at: Token


def parse(text: str) -> tuple:
    """Livecoding text -> Program (tuple of statement values); raises DSLError."""
    return tuple(item.statement for item in parse_located(text))


def parse_located(text: str) -> tuple[Located, ...]:
    """Like ``parse``, keeping the line and column where each top-level statement starts."""
    if not isinstance(text, str):
        raise DSLError(f"the program must be text, got {type(text).__name__}")
    check_size(text)
    try:
        tree = _PARSER.parse(text)
    except UnexpectedInput as error:
        raise from_lark(error, text, _PARSER, _NAMES, _STATEMENT).with_source(text) from None
    try:
        return _ToValues().transform(tree)
    except VisitError as error:
        if isinstance(error.orig_exc, DSLError):
            raise error.orig_exc.with_source(text) from None
        raise
    except RecursionError:  # the last guard; check_size keeps the tree far shallower than this
        raise DSLError(f"bodies nest at most {v.MAX_NESTING} deep", 1, 1).with_source(text) from None


def check_size(text: str) -> None:
    """DSLError unless ``text`` is at most ``MAX_TEXT_CHARS`` long and nests at most ``MAX_NESTING`` bodies."""
    if len(text) > v.MAX_TEXT_CHARS:
        line, column = position_of(text, v.MAX_TEXT_CHARS)
        raise DSLError(
            f"a text is at most {v.MAX_TEXT_CHARS} characters, got {len(text)}",
            line, column,
        ).with_source(text)
    offset = too_deep(text, v.MAX_NESTING)
    if offset is not None:
        raise DSLError(f"bodies nest at most {v.MAX_NESTING} deep", *position_of(text, offset)).with_source(text)


def too_deep(text: str, limit: int) -> int | None:
    """The offset of the body opener (``:`` of ``at``/``in``/``every``, ``=`` of ``scene``) that
    nests bodies more than ``limit`` deep, or None. A scan of the text, strings and comments
    skipped: an opener counts until its statement ends (``;`` or a line break outside its body)."""
    openers = [0]  # per open { }: the openers of the statement being read at that level
    pending = continued = False  # the last token opened a body (which may start on the next line); a \ ends the line
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == '"':  # a string, to its closing quote or the end of its line
            i += 1
            while i < n and text[i] not in '"\n':
                i += 2 if text[i] == "\\" else 1
            pending = continued = False
        elif char == "#" or text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif char in ":=":
            openers[-1] += 1
            if sum(openers) > limit:
                return i
            pending = True
        elif char == "{":
            openers.append(0)
            pending = False
        elif char == "}":
            if len(openers) > 1:
                openers.pop()
        elif char == ";" or (char == "\n" and not pending and not continued):
            openers[-1] = 0
        elif char == "\\":
            continued = True
        elif not char.isspace():
            pending = continued = False
        if char == "\n":
            continued = False
        i += 1
    return None


def number(token: Token) -> int | float:
    """A NUMBER token as int when written without a point or exponent, else float (a whole number
    too long for Python's int conversion is a float too: inf, refused by every range)."""
    if _INTEGER.match(token):
        try:
            return int(token)
        except ValueError:  # more than sys.get_int_max_str_digits() digits
            return float(token)
    return float(token)


def string(token: Token) -> str:
    """A STRING token without its quotes; ``\\"`` and ``\\\\`` are the only escapes."""
    return _ESCAPE.sub(lambda m: m.group(1) if m.group(1) in '\\"' else m.group(0), token[1:-1])


def _make(cls, at, fields: dict | None = None, **kwargs):
    """Build a value; a failed validator becomes a DSLError at the token of the failing field."""
    try:
        return cls(**kwargs)
    except v.FieldError as error:
        where = (fields or {}).get(error.field, at)
        raise DSLError(str(error), where.line, where.column) from None


def _knob(name: str):
    """The transformer method of a knob without arguments (``cfg``, ``delay mix``, ...): (name, None, where)."""

    @v_args(meta=True)
    def make(self, meta, children: list) -> tuple:
        return name, None, meta

    return make


@v_args(inline=True)
class _ToValues(Transformer):
    # --- program structure --------------------------------------------------------------------

    def start(self, *items: Located) -> tuple[Located, ...]:
        return items

    @v_args(meta=True)
    def statement(self, meta, children: list) -> Located:
        return Located(children[0], getattr(meta, "line", 1), getattr(meta, "column", 1))

    def body(self, item) -> tuple:
        return (item.statement,) if isinstance(item, Located) else item

    def block(self, *items: Located) -> tuple:
        return tuple(item.statement for item in items)

    # --- knobs --------------------------------------------------------------------------------

    def tempo(self, token: Token) -> v.Tempo:
        return _make(v.Tempo, token, bpm=number(token))

    def steps(self, token: Token) -> v.Steps:
        return _make(v.Steps, token, n=number(token))

    def cfg(self, token: Token) -> v.Cfg:
        return _make(v.Cfg, token, scale=number(token))

    def seed(self, token: Token) -> v.Seed:
        return _make(v.Seed, token, seed=number(token))

    def regime(self, token: Token) -> v.Regime:
        return _make(v.Regime, token, name=str(token))

    def reset(self) -> v.Reset:
        return v.Reset()

    def status(self) -> v.Status:
        return v.Status()

    def cancel(self) -> v.Cancel:
        return v.Cancel()

    def record_start(self, token: Token) -> v.RecordStart:
        return _make(v.RecordStart, token, path=string(token))

    def record_stop(self) -> v.RecordStop:
        return v.RecordStop()

    # --- prompts ------------------------------------------------------------------------------

    @v_args(meta=True)
    def prompt(self, meta, children: list) -> v.Prompt:
        *terms, over = children
        return _make(v.Prompt, meta, terms=terms, over=None if over is None else over.span)

    def term(self, text: Token, weight: Token | None) -> v.PromptTerm:
        return _make(
            v.PromptTerm, text, {"weight": weight},
            text=string(text), weight=None if weight is None else number(weight),
        )

    def over(self, span: _SpanAt) -> _SpanAt:
        return span

    def span(self, amount: Token | None, unit: Token) -> _SpanAt:
        at = unit if amount is None else amount
        value = _make(v.Span, at, amount=1 if amount is None else number(amount), unit=str(unit).rstrip("s"))
        return _SpanAt(value, at)

    # --- sketches -----------------------------------------------------------------------------

    def melody(self) -> str:
        return "melody"

    def rhythm(self) -> str:
        return "rhythm"

    def loudness(self) -> str:
        return "loudness"

    def sketch_pattern(self, kind: str, text: Token) -> v.SketchPattern:
        try:
            pattern = parse_pattern(string(text), kind)
        except DSLError as error:  # the column is inside the string; it starts after the quote
            raise DSLError(error.message, text.line, text.column + error.column) from None
        return v.SketchPattern(kind, pattern)

    def sketch_ramp(self, start: Token, end: Token, over: _SpanAt) -> v.SketchRamp:
        return _make(
            v.SketchRamp, start, {"end": end, "over": over.at},
            start=number(start), end=number(end), over=over.span,
        )

    def sketch_off(self, kind: str | None) -> v.SketchOff:
        return v.SketchOff(kind)

    # --- delay --------------------------------------------------------------------------------

    def delay_off(self) -> v.DelayOff:
        return v.DelayOff()

    @v_args(meta=True)
    def delay_on(self, meta, children: list) -> v.Delay:
        time, *options = children
        kwargs: dict = {} if time is None else {"time": time.span}
        fields: dict = {} if time is None else {"time": time.at}
        for name, value, token in options:
            if name in kwargs:
                raise DSLError(f"{'prompt' if name == 'prompts' else name} is given twice", token.line, token.column)
            kwargs[name], fields[name] = value, token
        return _make(v.Delay, meta, fields, **kwargs)

    def strength(self, token: Token) -> tuple:
        return "strength", number(token), token

    def feedback(self, token: Token) -> tuple:
        return "feedback", number(token), token

    def mix(self, token: Token) -> tuple:
        return "mix", number(token), token

    def delay_prompt(self, *tokens: Token) -> tuple:
        return "prompts", tuple(string(t) for t in tokens), tokens[0]

    # --- jamming ------------------------------------------------------------------------------

    def jam_on(self) -> v.Jam:
        return v.Jam(True)

    def jam_off(self) -> v.Jam:
        return v.Jam(False)

    def jam_key(self) -> v.Jam:
        return v.Jam(True, "key")

    def jam_beat(self) -> v.Jam:
        return v.Jam(True, "beat")

    def jam_listen(self) -> v.Jam:
        return v.Jam(True, "listen")

    # --- musical time and scenes --------------------------------------------------------------

    def at_next(self, span: _SpanAt, body: tuple) -> v.AtNext:
        return _make(v.AtNext, span.at, span=span.span, body=body)

    def after(self, span: _SpanAt, body: tuple) -> v.After:
        return _make(v.After, span.at, span=span.span, body=body)

    def every(self, span: _SpanAt, body: tuple) -> v.Every:
        return _make(v.Every, span.at, span=span.span, body=body)

    def scene(self, name: Token, body: tuple) -> v.SceneDef:
        return _make(v.SceneDef, name, name=str(name), body=body)

    def play(self, name: Token) -> v.Play:
        return _make(v.Play, name, name=str(name))

    # --- MIDI ---------------------------------------------------------------------------------

    def midi_map(self, control: Token, channel: Token | None, knob: tuple, span: tuple | None, smooth: _SpanAt | None) -> v.MidiMap:
        name, prompts, at = knob
        low, high = (None, None) if span is None else span
        fields = {"channel": channel, "knob": at, "prompts": at, "low": low, "high": high,
                  "smooth": None if smooth is None else smooth.at}
        return _make(
            v.MidiMap, control, fields, control=number(control), knob=name, prompts=prompts,
            low=None if low is None else number(low), high=None if high is None else number(high),
            channel=None if channel is None else number(channel), smooth=None if smooth is None else smooth.span,
        )

    def midi_unmap(self, control: Token, channel: Token | None) -> v.MidiUnmap:
        return _make(v.MidiUnmap, control, {"channel": channel},
                     control=number(control), channel=None if channel is None else number(channel))

    def midi_channel(self, token: Token) -> Token:
        return token

    knob_cfg = _knob("cfg")
    knob_delay_strength = _knob("delay strength")
    knob_delay_feedback = _knob("delay feedback")
    knob_delay_mix = _knob("delay mix")
    knob_loudness = _knob("sketch loudness")

    def knob_prompt(self, first: Token, second: Token) -> tuple:
        return "prompt", (string(first), string(second)), first

    def midi_range(self, low: Token, high: Token) -> tuple[Token, Token]:
        return low, high

    def midi_smooth(self, span: _SpanAt) -> _SpanAt:
        return span

    @v_args(meta=True)
    def midi_notes(self, meta, children: list) -> v.MidiNotes:
        channel, = children
        return _make(v.MidiNotes, meta, {"channel": channel}, on=True, channel=None if channel is None else number(channel))

    def midi_notes_off(self) -> v.MidiNotes:
        return v.MidiNotes(False)

    def midi_clock_in(self) -> v.MidiClock:
        return v.MidiClock("in")

    def midi_clock_out(self) -> v.MidiClock:
        return v.MidiClock("out")

    def midi_clock_in_off(self) -> v.MidiClock:
        return v.MidiClock("in", on=False)

    def midi_clock_out_off(self) -> v.MidiClock:
        return v.MidiClock("out", on=False)

    def midi_clock_off(self) -> v.MidiClock:
        return v.MidiClock(None, on=False)

    def midi_start(self, body: tuple) -> v.MidiTransport:
        return v.MidiTransport("start", body)

    def midi_stop(self, body: tuple) -> v.MidiTransport:
        return v.MidiTransport("stop", body)

    def midi_off(self) -> v.MidiOff:
        return v.MidiOff()
