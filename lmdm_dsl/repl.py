"""Reading statements from a performer: the lmdm> prompt, and a set file re-run when it is saved.

Both only move text to ``Interpreter.run`` and print what it says (plus what statements fired
on the generation thread said since), so they are tested with fake input and a temp file.

On a terminal the prompt is prompt_toolkit's: a multi-line entry, history, highlighting from the
grammar's own terminals (``highlight``), a bottom line from a ``status()`` callable
(``format_status``), and block messages printed above the line being typed. Anywhere else (a pipe,
tests, a dumb terminal) the same loop reads lines from ``input_fn``. One rule says when an entry is
finished (``needs_more``), one loop (``_loop``) applies it, whichever reads the keys.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import attrs
from lark import Lark
from lark.lexer import PatternStr
from prompt_toolkit import PromptSession
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.lexers import Lexer
from prompt_toolkit.patch_stdout import patch_stdout
from prompt_toolkit.styles import Style
from prompt_toolkit.utils import is_dumb_terminal

from lmdm_dsl.clock import EPS, Clock
from lmdm_dsl.interpreter import Interpreter
from lmdm_dsl.values import num, quote

PROMPT = "lmdm> "
MORE = "  ... "
QUIT_WORDS = ("quit", "exit")
GRAMMAR = Path(__file__).parent / "grammar.lark"
REFRESH_SECONDS = 0.25  # the bottom line is redrawn this often
MESSAGE_SECONDS = 0.1  # block messages are looked for this often while the performer types
PROMPT_CHARS = 48  # the bottom line shows at most this much of the prompt
STYLE = Style.from_dict({
    "keyword": "ansiblue bold", "unit": "ansicyan", "string": "ansigreen",
    "number": "ansimagenta", "comment": "ansibrightblack italic", "name": "",
})


# --- when an entry is finished --------------------------------------------------------------------


def code_part(line: str) -> str:
    """``line`` without its comment and with every string emptied: what braces count in."""
    out, i, n = [], 0, len(line)
    while i < n:
        char = line[i]
        if char == '"':
            j = i + 1
            while j < n and line[j] != '"':
                j += 2 if line[j] == "\\" else 1
            out.append('""')
            i = j + 1
        elif char == "#" or line.startswith("//", i):
            break
        else:
            out.append(char)
            i += 1
    return "".join(out)


def needs_more(text: str) -> bool:
    """Is the input unfinished? Braces still open, or the last line ends in ``\\``, ``:`` or ``=``."""
    lines = text.split("\n")
    depth = sum(code_part(line).count("{") - code_part(line).count("}") for line in lines)
    last = code_part(lines[-1]).rstrip()
    return depth > 0 or last.endswith(("\\", ":", "="))


# --- highlighting, from the grammar's terminals ----------------------------------------------------


@functools.cache
def _token_pattern() -> re.Pattern:
    """One regex, a named group per token class, built from ``grammar.lark``: its keywords (the
    quoted words of its rules), and its COMMENT, STRING, UNIT, NUMBER and NAME terminals."""
    terminals = {t.name: t.pattern for t in Lark(GRAMMAR.read_text(), parser="lalr").terminals}
    quoted = sorted((p for p in terminals.values() if isinstance(p, PatternStr)), key=lambda p: -len(p.value))
    words = [p.to_regexp() for p in quoted if re.fullmatch(r"[A-Za-z_]\w*", p.value)]
    marks = [p.to_regexp() for p in quoted if len(p.value) > 1 and not re.fullmatch(r"[A-Za-z_]\w*", p.value)]
    classes = {
        "comment": terminals["COMMENT"].to_regexp(),
        "string": terminals["STRING"].to_regexp() + r'|"[^"\n]*',  # or one still being typed
        "unit": terminals["UNIT"].to_regexp(),  # before the keywords: "1 beat" is a unit ("jam beat" too)
        "keyword": "(?:" + ("|".join(words) or "(?!)") + r")(?![A-Za-z0-9_])",
        "mark": "|".join(marks) or "(?!)",  # "..", "->": before numbers, or "0..8" would lex as 0 and .8
        "number": terminals["NUMBER"].to_regexp(),
        "name": terminals["NAME"].to_regexp(),
        "other": r"\s+|.",
    }
    return re.compile("|".join(f"(?P<{name}>{regex})" for name, regex in classes.items()), re.DOTALL)


def highlight(line: str) -> list[tuple[str, str]]:
    """``line`` cut into (class, text) pieces: keyword, unit, string, number, comment, name, or ""
    for spaces and punctuation. Any text lexes, half-typed or wrong (an unclosed string is a string)."""
    return [("" if m.lastgroup in ("mark", "other") else m.lastgroup, m.group()) for m in _token_pattern().finditer(line)]


class _Lexer(Lexer):
    def lex_document(self, document):
        lines = document.lines

        def line(number: int):
            if number >= len(lines):
                return []
            return [(f"class:{cls}" if cls else "", text) for cls, text in highlight(lines[number])]

        return line


# --- the bottom line ------------------------------------------------------------------------------


@attrs.frozen
class StatusLine:
    """What the bottom line shows; a ``status()`` callable returns one (or a ready string)."""

    block: int  # blocks generated so far
    bar: int  # bar and beat (from 1) where that block starts
    beat: int
    bpm: float
    prompt: str
    rtf: float  # real-time factor: compute time / block length (< 1 keeps up)
    buffer_seconds: float | None = None  # audio queued for the device; None without an audio engine
    ahead_seconds: float | None = None  # the engine generates while less than this is queued
    underruns: int | None = None


def bar_and_beat(clock: Clock, block: int, block_seconds: float) -> tuple[int, int]:
    """Bar and beat, both counted from 1, where ``block`` starts (bar 0 and below: before bar 1)."""
    position = clock.cycle_at(block, block_seconds) + EPS
    bar = math.floor(position)
    beat = min(math.floor((position - bar) * clock.beats_per_bar), clock.beats_per_bar - 1)
    return bar + 1, beat + 1


def format_status(status: StatusLine | str) -> str:
    """One line: block, bar and beat, tempo, prompt, buffer (and ahead), real-time factor, underruns."""
    if isinstance(status, str):
        return status
    prompt = quote(status.prompt)
    if len(prompt) > PROMPT_CHARS:
        prompt = prompt[: PROMPT_CHARS - 1] + "…"
    parts = [
        f"block {status.block}", f"bar {status.bar} beat {status.beat}", f"{num(status.bpm)} BPM",
        f"prompt {prompt}",
    ]
    if status.buffer_seconds is not None:
        ahead = "" if status.ahead_seconds is None else f" (ahead {status.ahead_seconds:.1f} s)"
        parts.append(f"buffer {status.buffer_seconds:.1f} s{ahead}")
    parts.append(f"rtf {status.rtf:.2f}")
    if status.underruns is not None:
        parts.append(f"underruns {status.underruns}")
    return " | ".join(parts)


# --- the loop -------------------------------------------------------------------------------------


def on_a_terminal() -> bool:
    """Can prompt_toolkit drive this process's terminal (stdin and stdout a TTY, not a dumb one)?"""
    try:
        return sys.stdin.isatty() and sys.stdout.isatty() and not is_dumb_terminal()
    except (AttributeError, ValueError):  # no stdin (pythonw), or a closed one
        return False


def run_repl(
    interpreter: Interpreter,
    input_fn: Callable[[str], str] = input,
    print_fn: Callable[[str], None] = print,
    *,
    history_file: str | os.PathLike | None = None,
    status: Callable[[], StatusLine | str] | None = None,
) -> None:
    """Read statements until end of input (Ctrl-D) or ``quit``; Ctrl-C clears a half-typed entry.

    An entry continues over several lines while braces are open or a line ends in ``\\``, ``:``
    or ``=``. With the real ``input`` on a terminal this is ``run_terminal`` (prompt_toolkit, the
    history kept in ``history_file``, a bottom line from ``status``); if that cannot start, or
    with another ``input_fn``, lines come from ``input_fn`` (readline, when available, gives line
    editing and the history with the real ``input``).
    """
    if input_fn is input and on_a_terminal():
        try:
            terminal = _Terminal(print_fn, history_file, status)
        except Exception:  # prompt_toolkit cannot drive this terminal: the plain loop below
            terminal = None
        if terminal is not None:
            terminal.run(interpreter)
            return
    readline = _readline(history_file) if input_fn is input else None
    try:
        _loop(interpreter, input_fn, print_fn, threading.Lock())
    finally:
        if readline is not None and history_file is not None:
            try:
                readline.write_history_file(_expanded(history_file))
            except OSError:
                pass


def run_terminal(
    interpreter: Interpreter,
    print_fn: Callable[[str], None] = print,
    *,
    history_file: str | os.PathLike | None = None,
    status: Callable[[], StatusLine | str] | None = None,
) -> None:
    """``run_repl`` on prompt_toolkit, reading the current app session's input (the terminal, or a
    test's pipe). Enter finishes an entry unless ``needs_more`` says it goes on; Ctrl-C clears it and
    a second Ctrl-C in a row at an empty prompt stops, as Ctrl-D and ``quit`` do."""
    _Terminal(print_fn, history_file, status).run(interpreter)


def _loop(interpreter: Interpreter, read: Callable[[str], str], print_fn: Callable[[str], None], lock) -> None:
    """Read entries with ``read(prompt)`` and run them; ``lock`` is held while a reply is printed, so
    that messages printed from another thread never come before the reply they follow."""
    lines: list[str] = []
    while True:
        with lock:
            for message in interpreter.messages():
                print_fn(message)
        try:
            line = read(MORE if lines else PROMPT)
        except EOFError:
            break
        except KeyboardInterrupt:
            lines = []
            print_fn("(entry cleared)")
            continue
        if not lines and line.strip() in QUIT_WORDS:
            break
        lines.append(line)
        text = "\n".join(lines)
        if needs_more(text):
            continue
        lines = []
        with lock:
            for message in interpreter.run(text):
                print_fn(message)


class _Terminal:
    """prompt_toolkit's side of ``_loop``: ``read`` returns a whole entry, edited over several lines."""

    def __init__(self, print_fn, history_file, status):
        self.print_fn = print_fn
        self.status = status
        self.interrupted = False  # the last entry ended in Ctrl-C: another one at an empty prompt stops
        history: History = InMemoryHistory() if history_file is None else _History(_expanded(history_file))
        self.session = PromptSession(
            PROMPT, multiline=True, prompt_continuation=MORE, history=history, lexer=_Lexer(), style=STYLE,
            key_bindings=self._keys(), bottom_toolbar=None if status is None else self._toolbar,
            refresh_interval=REFRESH_SECONDS if status is not None else 0,
        )

    def run(self, interpreter: Interpreter) -> None:
        lock = threading.Lock()
        with patch_stdout(), _relaying(interpreter, self.print_fn, lock):
            _loop(interpreter, self.read, self.print_fn, lock)

    def read(self, prompt: str) -> str:
        try:
            text = self.session.prompt()
        except KeyboardInterrupt:
            if not self.interrupted:
                self.print_fn("(Ctrl-C again to stop)")
            self.interrupted = True
            raise
        self.interrupted = False
        return text

    def _keys(self) -> KeyBindings:
        keys = KeyBindings()

        @keys.add("enter")
        def _enter(event) -> None:
            buffer = event.current_buffer
            if needs_more(buffer.text):
                buffer.newline(copy_margin=True)
            else:
                buffer.validate_and_handle()

        @keys.add("c-c")
        def _interrupt(event) -> None:
            stop = self.interrupted and not event.current_buffer.text
            event.app.exit(exception=EOFError if stop else KeyboardInterrupt, style="class:aborting")

        return keys

    def _toolbar(self) -> str:
        try:
            return " " + format_status(self.status())
        except Exception as error:  # the bottom line never ends the REPL
            return f" status unavailable: {type(error).__name__}: {error}"


@contextlib.contextmanager
def _relaying(interpreter: Interpreter, print_fn: Callable[[str], None], lock) -> Iterator[None]:
    """While the performer types, print what statements fired on the generation thread said
    (under ``patch_stdout`` it appears above the line being typed)."""
    stop = threading.Event()

    def relay() -> None:
        while not stop.wait(MESSAGE_SECONDS):
            with lock:
                for message in interpreter.messages():
                    print_fn(message)

    thread = threading.Thread(target=relay, name="lmdm-repl-messages", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(1)


class _History(FileHistory):
    """prompt_toolkit's history file that also reads the one-line-per-entry file readline writes
    (an older ``~/.lmdm_history``), and never stops the REPL when the file cannot be written."""

    def load_history_strings(self) -> Iterator[str]:
        entries: list[str] = []
        lines: list[str] = []
        try:
            with open(self.filename, "rb") as file:
                for raw in file:
                    line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                    if line.startswith("+"):  # prompt_toolkit's: "+" before each line of an entry
                        lines.append(line[1:])
                        continue
                    if lines:
                        entries.append("\n".join(lines))
                        lines = []
                    if line.strip() and not line.startswith("#"):  # readline's: one line, one entry
                        entries.append(line)
        except OSError:
            pass
        if lines:
            entries.append("\n".join(lines))
        return reversed(entries)

    def store_string(self, string: str) -> None:
        with contextlib.suppress(OSError):
            super().store_string(string)


def _expanded(path: str | os.PathLike) -> str:
    return os.path.expanduser(os.fspath(path))


def _readline(history_file):
    try:
        import readline
    except ImportError:  # Windows without pyreadline: plain input() still works
        return None
    if history_file is not None and os.path.exists(_expanded(history_file)):
        try:
            readline.read_history_file(_expanded(history_file))
        except OSError:
            pass
    return readline


def watch_file(
    path: str | os.PathLike,
    interpreter: Interpreter,
    poll_seconds: float = 0.5,
    *,
    print_fn: Callable[[str], None] = print,
    max_polls: int | None = None,
    stop: threading.Event | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run the set file now and again each time it changes; returns how many times it ran.

    Polls the file's modification time (and size) every ``poll_seconds`` until ``stop`` is set or
    ``max_polls`` polls are done. Each run is tagged with the path, so the file's ``every``
    statements replace those of its previous version instead of piling up. A missing or
    unreadable file is reported once and watched for.
    """
    path = Path(path)
    seen: tuple[int, int] | None = None
    runs = polls = 0
    complained = False
    while max_polls is None or polls < max_polls:
        if stop is not None and stop.is_set():
            break
        polls += 1
        for message in interpreter.messages():
            print_fn(message)
        try:
            info = path.stat()
            stamp = (info.st_mtime_ns, info.st_size)
            text = path.read_text(encoding="utf-8", errors="replace") if stamp != seen else None
        except OSError as error:
            if not complained:
                print_fn(f"error: cannot read {path}: {error.strerror or error}")
                complained = True
        else:
            complained = False
            if text is not None:
                seen = stamp
                runs += 1
                for message in interpreter.run(text, tag=str(path)):
                    print_fn(message)
        if max_polls is None or polls < max_polls:
            sleep(poll_seconds)
    return runs
