"""lmdm_dsl: the livecoding language for lmdm.

Three steps, each testable on its own:

1. ``parse(text)`` -> a Program, a tuple of frozen statement values (``values.py`` gathers them
   from ``values_base.py``, the ranges and shared validators, and ``values_session``,
   ``values_sketch``, ``values_delay``, ``values_schedule``, ``values_midi``), or a ``DSLError``
   with line, column and a caret. The grammar is ``grammar.lark``; sketches use the
   mini-notation of ``mini.lark`` and become ``Pattern`` values (``mini.py``).
2. The values print back as source (``to_source()``) and carry no behaviour.
3. ``Interpreter(session).run(text)`` (``interpreter.py``: the hook and the scheduler) applies them
   to a ``LiveSession``, now or on the musical grid (``clock.py``), through one handler per
   statement type (``handlers_session``, ``handlers_sound``, ``handlers_midi``, with the MIDI
   bridge's math in ``midi.py``), and never raises on performer input.

``repl.py`` reads statements from a terminal or a watched file.
"""

from lmdm_dsl.clock import Clock
from lmdm_dsl.errors import DSLError
from lmdm_dsl.interpreter import Interpreter
from lmdm_dsl.mini import Event, Pattern, parse_pattern, render
from lmdm_dsl.parser import parse
from lmdm_dsl.repl import run_repl, watch_file
from lmdm_dsl.values import DelaySpec, Program, program_source

__all__ = [
    "Clock", "DSLError", "DelaySpec", "Event", "Interpreter", "Pattern", "Program",
    "parse", "parse_pattern", "program_source", "render", "run_repl", "watch_file",
]
