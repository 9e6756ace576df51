"""Making blocks again: the session's state at the start of each of its newest blocks.

At each block start the session takes a `snapshot` of itself (every attribute but those in
_NOT_REWOUND, the mutable ones copied one level: the stream, the codec's stream decoder, the
generator's state, the block inputs, the output mix, the delay line) and records it in its
`RewindHistory` (`session._rewinds`) with the changes that block start applied.
`LiveSession.rewind(n)` asks for the newest n blocks again; at the next block start `take_rewind`
takes them back (`RewindHistory.take`), queues their changes again ahead of the changes queued
since, and `restore`s the oldest one's state: the stream goes on from there with the same seed and
history, only the changes differ.

    block start (LiveSession._start_block):
        take_rewind(session)  -> snap = snapshot(session) -> queued changes and hooks applied,
        recorded in snap.changes -> session._rewinds.record(snap) -> the block is made
"""

from __future__ import annotations

import collections
import copy
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import attrs
import torch

from lmdm.session.values import check_steps

if TYPE_CHECKING:
    from lmdm.session.live_session import LiveSession

REWIND_BLOCKS = 3  # the newest blocks a session can make again (LiveSession.rewind): 1.44 s of 0.48 s blocks, past `--ahead` 1 s
# what a block start restores on a rewind is every attribute but these (shared, or not part of the stream's state)
_NOT_REWOUND = frozenset({"model", "codec", "placement", "threads", "_lock", "_pending", "_hooks", "errors", "_error_count",
                          "_compute_ms", "_inbox", "_player", "_null", "_input_keep_blocks", "_rewinds", "_nudged",
                          "_hurry", "_landing_local", "_landed"})


@attrs.frozen(eq=False)
class _Snapshot:
    """A session at the start of a block: its attributes (those a rewind restores) and the changes
    that block's start applied (queued again when the block is made again)."""

    block: int
    state: dict
    changes: list


class RewindHistory:
    """The snapshots of the newest `blocks` block starts (oldest first) and how many of those
    blocks to make again at the next block start. The session guards it with its lock."""

    def __init__(self, blocks: int = REWIND_BLOCKS):
        self._snapshots: collections.deque[_Snapshot] = collections.deque(maxlen=blocks)
        self._asked = 0  # blocks to make again at the next block start
        self._steps: int | None = None  # ... the first of them with this many sampler steps (None: the session's)

    def __len__(self) -> int:
        return len(self._snapshots)

    def ask(self, blocks: int, steps: int | None = None) -> None:
        """Make the newest `blocks` blocks again at the next block start, the first of them with at
        most `steps` sampler steps (None: the session's); ValueError if that many cannot be."""
        if isinstance(blocks, bool) or not isinstance(blocks, int) or not 1 <= blocks <= REWIND_BLOCKS:
            raise ValueError(f"rewind takes 1 to {REWIND_BLOCKS} blocks, got {blocks!r}")
        if steps is not None:
            check_steps(steps, "rewind's steps")
        if blocks > len(self._snapshots):
            raise ValueError(f"only {len(self._snapshots)} block(s) can be made again now, not {blocks}")
        self._asked = max(self._asked, blocks)
        self._steps = steps

    def record(self, snap: _Snapshot) -> None:
        self._snapshots.append(snap)

    def take_newest(self) -> _Snapshot:
        """The newest snapshot (the block just made), dropped: that block is made again now (a landing)."""
        return self._snapshots.pop()

    def take(self) -> tuple[list[_Snapshot], int | None]:
        """The snapshots of the blocks asked to be made again, oldest first, dropped from the
        history ([] when none was asked), and the steps asked for the first of them."""
        blocks, self._asked = self._asked, 0
        steps, self._steps = self._steps, None
        if not blocks or blocks > len(self._snapshots):
            return [], None
        undone = list(self._snapshots)[-blocks:]
        for _ in range(blocks):
            self._snapshots.pop()
        return undone, steps


def snapshot(session: LiveSession) -> _Snapshot:
    """The session's state at the start of its next block (no changes recorded yet)."""
    state = {k: v for k, v in vars(session).items() if k not in _NOT_REWOUND}
    state["stream"] = _one_level(session.stream)
    state["_decoder"] = _one_level(session._decoder)
    state["_generator"] = session._generator.get_state()
    state["_inputs"] = _one_level(session._inputs)
    state["_output"] = copy.copy(session._output)
    state["_delay"] = None if session._delay is None else _one_level(session._delay)
    return _Snapshot(session._blocks, state, [])


def restore(session: LiveSession, snap: _Snapshot) -> None:
    """Put the session back to `snap` (which is dropped: its copies become the session's own)."""
    state = dict(snap.state)
    session._generator.set_state(state.pop("_generator"))
    for k, v in state.items():
        setattr(session, k, v)
    if session._delay is not None:
        session._delay.wet.truncate(snap.block * session.block_samples)  # the wet audio of the blocks undone


def take_rewind(session: LiveSession) -> int | None:
    """At a block start: go back as `rewind` asked, the changes of the undone blocks queued again
    first. -> the sampler steps asked for the block made now (None: the session's own)."""
    with session._lock:
        undone, steps = session._rewinds.take()
    if not undone:
        return None
    _go_back(session, undone)
    session._leftover = session._leftover[:0]
    return steps


def remake_newest(session: LiveSession, changes: Sequence[Callable[[], None]]) -> None:
    """Back to the start of the block just made, to make it again with `changes` after those its
    start applied (a landing, lmdm/session/landing.py)."""
    with session._lock:
        newest = session._rewinds.take_newest()
    _go_back(session, [newest], changes)


def _go_back(session: LiveSession, undone: list[_Snapshot], then: Sequence[Callable[[], None]] = ()) -> None:
    """Queue the undone blocks' changes, then `then`, ahead of those queued since, and restore the
    oldest undone block's start."""
    with session._lock:
        session._pending = [c for snap in undone for c in snap.changes] + list(then) + session._pending
    restore(session, undone[0])


def _one_level(obj):
    """A copy of `obj` whose dict and list attributes are copied too, and whose wrapped stream
    (`inner`, `encoder`) is copied the same way: enough for the stream, the codec's stream
    decoders and encoders, the block inputs (their sketches) and the delay line, which replace
    their tensors and never write them in place (the KV cache's in-place writes go to per-block
    copies, lmdm.cache.KVBuffer)."""
    c = copy.copy(obj)
    for k, v in vars(obj).items():
        if isinstance(v, (dict, list)):
            setattr(c, k, type(v)(v))
        elif k in ("inner", "encoder") and hasattr(v, "__dict__") and not isinstance(v, torch.nn.Module):
            setattr(c, k, _one_level(v))
    return c


class RewindControls:
    """rewind, changes_queued, nudge, hurry and rewindable of `LiveSession` (which provides the state
    named below): what a splicing audio engine (lmdm/audio/feeder.py) calls to make the playing
    block again with a change."""

    _lock: threading.RLock
    _pending: list[Callable[[], None]]
    _rewinds: RewindHistory
    _nudged: bool
    _hurry: int | None

    def rewind(self, blocks: int = 1, *, steps: int | None = None) -> None:
        """Make the newest `blocks` blocks again (1 to REWIND_BLOCKS), from the next block on: the
        stream goes back to the start of the first of them, and it is made again with the changes
        those blocks applied and the changes queued since, in that order, as if all had been queued
        before it. Same seed, same history: only the changes differ. For an app that keeps audio
        ahead of the listener: call it with a change, and take the new blocks from the next read on
        (the audio already read of the old ones is not taken back).

        `steps`: the first block made again uses at most this many sampler steps (the blocks after
        it the session's own): a splicing engine's quicker redo, heard sooner (EngineConfig.splice_steps)."""
        with self._lock:
            self._rewinds.ask(blocks, steps)

    @property
    def changes_queued(self) -> bool:
        """Are changes waiting for the next block (queued, or announced by `nudge`)? A splicing audio
        engine then makes the playing block again with them (lmdm/audio/feeder.py)."""
        with self._lock:
            return bool(self._pending) or self._nudged

    def nudge(self) -> None:
        """Say that a change is waiting which the hooks will apply at the next block start (a MIDI
        knob or key the language maps): a splicing engine makes the playing block again, so that
        the hooks run again for it with the change. Any thread may call it."""
        with self._lock:
            self._nudged = True

    def hurry(self, steps: int) -> None:
        """Make the next block in at most `steps` sampler steps, once: a splicing engine's catch-up
        when a splice left less audio ahead of the listener than a block of the session's steps
        takes to make (lmdm/audio/feeder.py). Any thread may call it."""
        check_steps(steps, "hurry's steps")
        with self._lock:
            self._hurry = steps

    @property
    def rewindable(self) -> int:
        """How many of the newest blocks `rewind` can make again now."""
        return len(self._rewinds)
