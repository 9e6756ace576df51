"""What the interpreter and its handlers share while applying one statement.

A handler (``interpreter.HANDLERS``) gets the ``Interpreter``, the statement and a ``Context``: the
block the statement applies to, the tag of the run (``watch_file``'s path), and while a ``play``
runs, the scenes being played and what is left of its ``Budget``. A statement that parsed but
cannot be applied raises ``Refused`` (or ``ValueError``); ``Interpreter._apply`` turns either into
one ``error:`` message, written on one line by ``one_line``.
"""

from __future__ import annotations

import attrs

from lmdm_dsl import values as v


class Refused(Exception):
    """A statement that parsed but cannot be applied here; becomes one ``error:`` message."""


@attrs.define
class Budget:
    """What is left of the statements one ``play`` may run (``MAX_PLAYED``), its scenes' plays included."""

    left: int = v.MAX_PLAYED
    told: bool = False  # the error has been given


@attrs.frozen
class Context:
    now: int  # the block the statement applies to
    tag: str | None = None
    at: float | None = None  # inside a landing (LiveSession.landing): where in blocks it lands, between now and now + 1
    playing: tuple[str, ...] = ()  # scenes being played, outermost first
    budget: Budget | None = None  # shared by a `play` and the plays inside it


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
