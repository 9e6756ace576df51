"""One thread policy for everything that plays: `render`, `live`, `delay`, `bench`, the examples
and ``LiveSession``.

**The default is one intra-op thread** (``PLAY_THREADS``). The bundled model is as fast on one
thread as on two (real-time factor ~0.12 either way on this project's 2-core machine), and one
thread is robust to a busy machine: with two OpenMP threads and another process busy on a core,
each thread spin-waits for the other at every barrier, and a 1 s block took 2.25 s of compute.
One thread leaves the other cores to the audio callback, the REPL, OSC and whatever else runs.
Larger models may gain from more: pass ``--threads N`` (1 to the number of cores).

``torch.set_num_threads`` is process-wide, so a ``LiveSession`` applies its ``threads`` only
around its own block compute (``torch_threads``), on the thread that computes, and gives the
old setting back after each block; an app's own torch code keeps its setting.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from typing import Iterator

import torch

PLAY_THREADS = 1  # intra-op threads for playing (see the module docstring)


def max_threads() -> int:
    """The most threads ``--threads`` accepts: the machine's cores."""
    return os.cpu_count() or 1


def check_threads(n: object) -> int:
    """``n`` as a thread count from 1 to the number of cores; else a one-line ValueError."""
    top = max_threads()
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= top:
        raise ValueError(f"threads must be a whole number from 1 to {top} (the cores of this machine), got {n!r}")
    return n


def _threads_arg(text: str) -> int:
    try:
        return check_threads(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {max_threads()} (the cores), got {text!r}") from None


def add_threads_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The same ``--threads N`` on every command that plays."""
    parser.add_argument(
        "--threads", type=_threads_arg, default=PLAY_THREADS, metavar="N",
        help=f"CPU threads for the model, 1 to {max_threads()} (default {PLAY_THREADS}: as fast for the bundled "
        "model, and robust to a busy machine; docs/performance.md)",
    )


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run torch on ``n`` intra-op threads inside the block, then restore the old setting
    (``None``: leave torch's setting alone). Call it on the thread that computes."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
