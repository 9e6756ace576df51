"""Reading statements from a performer: a line REPL, and a set file re-run when it is saved.

Both only move text to ``Interpreter.run`` and print what it says (plus what statements fired
on the generation thread said since), so they are tested with fake input and a temp file.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Callable

from lmdm_dsl.interpreter import Interpreter

PROMPT = "lmdm> "
MORE = "  ... "
QUIT_WORDS = ("quit", "exit")


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


def run_repl(
    interpreter: Interpreter,
    input_fn: Callable[[str], str] = input,
    print_fn: Callable[[str], None] = print,
    *,
    history_file: str | os.PathLike | None = None,
) -> None:
    """Read statements until end of input (Ctrl-D) or ``quit``; Ctrl-C clears a half-typed entry.

    An entry continues over several lines while braces are open or a line ends in ``\\``, ``:``
    or ``=``. With the real ``input``, readline (when available) gives line editing and history,
    kept in ``history_file`` if one is given.
    """
    readline = _readline(history_file) if input_fn is input else None
    lines: list[str] = []
    try:
        while True:
            for message in interpreter.messages():
                print_fn(message)
            try:
                line = input_fn(MORE if lines else PROMPT)
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
            for message in interpreter.run(text):
                print_fn(message)
    finally:
        if readline is not None and history_file is not None:
            try:
                readline.write_history_file(os.fspath(history_file))
            except OSError:
                pass


def _readline(history_file):
    try:
        import readline
    except ImportError:  # Windows without pyreadline: plain input() still works
        return None
    if history_file is not None and os.path.exists(history_file):
        try:
            readline.read_history_file(os.fspath(history_file))
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
