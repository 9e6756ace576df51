"""One error type for everything a performer can get wrong in the text they type.

A ``DSLError`` knows where it happened (1-based line and column) and, once the source text is
attached, prints as one clear line followed by the offending source line and a caret::

    line 1, column 7: tempo must be between 20 and 400 BPM, got 500
      tempo 500
            ^
"""

from __future__ import annotations

import difflib

from lark import Lark
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput
from lark.lexer import PatternStr

_CONTEXT_WIDTH = 72  # characters of the source line shown around the caret


class DSLError(ValueError):
    """A syntax or value error in livecoding text, with its position."""

    def __init__(self, message: str, line: int = 1, column: int = 1, source_line: str | None = None):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.source_line = source_line

    def with_source(self, text: str) -> "DSLError":
        """The same error, with the source line taken from ``text`` for the caret display."""
        lines = text.split("\n")
        index = min(max(self.line, 1), len(lines)) - 1
        return DSLError(self.message, self.line, self.column, lines[index])

    @property
    def headline(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"

    def __str__(self) -> str:
        if self.source_line is None:
            return self.headline
        return self.headline + "\n" + caret_context(self.source_line, self.column)

    def __reduce__(self):  # keep pickling (and copying) working with the extra fields
        return (DSLError, (self.message, self.line, self.column, self.source_line))


def caret_context(source_line: str, column: int, indent: str = "  ") -> str:
    """Two lines: the source line (shortened around ``column`` if long) and a caret under it."""
    text = source_line.expandtabs(1).rstrip("\r\n")
    col = max(column, 1) - 1
    start = 0
    if len(text) > _CONTEXT_WIDTH:
        start = max(0, min(col - _CONTEXT_WIDTH // 2, len(text) - _CONTEXT_WIDTH))
        text = text[start : start + _CONTEXT_WIDTH]
    return f"{indent}{text}\n{indent}{' ' * (col - start)}^"


def from_lark(
    error: UnexpectedInput, text: str, parser: Lark, names: dict[str, str], many: str = "one of many things"
) -> DSLError:
    """A Lark syntax error as a DSLError: where it happened, what was found, what would fit.

    ``names`` gives friendly names for regex terminals ("NUMBER" -> "a number"); keywords are
    shown quoted; ``many`` replaces a list of more than eight options. A failure in the middle of a word ("tempoo") is reported as an unknown word at
    its start, with a suggestion when one is close.
    """
    offset = error.pos_in_stream
    token = getattr(error, "token", None)
    if isinstance(error, UnexpectedEOF) or offset is None or offset < 0 or getattr(token, "type", "") == "$END":
        offset = len(text.rstrip())
    start = offset
    while start > 0 and _is_word(text[start - 1]):
        start -= 1
    if start < offset < len(text) and _is_word(text[offset]):  # the lexer split a word: "tempoo"
        end = offset
        while end < len(text) and _is_word(text[end]):
            end += 1
        word = text[start:end]
        keywords = sorted({_keyword(parser, t.name) for t in parser.terminals} - {None})
        close = difflib.get_close_matches(word, keywords, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return DSLError(f"unknown word '{word}'{hint}", *position_of(text, start))

    if isinstance(error, UnexpectedCharacters):
        if text[offset : offset + 1] == '"':
            return DSLError('this "quote" is never closed on its line', *position_of(text, offset))
        found = f"character {text[offset]!r}" if offset < len(text) else "end of input"
        expected = error.allowed or set()
    else:
        found = _describe_token(token)
        expected = getattr(error, "accepts", None) or getattr(error, "expected", None) or set()
    options = sorted({_terminal_name(parser, name, names) for name in expected})
    if "end of line" in options and "end of input" in options:
        options.remove("end of input")
    if len(options) > 8:  # e.g. any statement: name the group, keep a closing bracket if one fits
        options = [many] + [o for o in options if o in ("'}'", "']'", "'>'")]
    message = f"unexpected {found}" + (f"; expected {', '.join(options)}" if options else "")
    return DSLError(message, *position_of(text, offset))


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _keyword(parser: Lark, name: str) -> str | None:
    pattern = parser.get_terminal(name).pattern
    return pattern.value if isinstance(pattern, PatternStr) and pattern.value.isalpha() else None


def _terminal_name(parser: Lark, name: str, names: dict[str, str]) -> str:
    if name in names:
        return names[name]
    if name == "$END":
        return "end of input"
    try:
        pattern = parser.get_terminal(name).pattern
    except KeyError:
        return name
    return f"'{pattern.value}'" if isinstance(pattern, PatternStr) else name.lower()


def _describe_token(token) -> str:
    if token is None or token.type == "$END":
        return "end of input"
    if token.type in ("_NL", "_SEP") or token.value in ("\n", ";"):
        return "end of line" if "\n" in token.value else f"'{token.value}'"
    return f"'{token.value}'"


def position_of(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of a character offset in ``text`` (offset may be ``len(text)``)."""
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column
