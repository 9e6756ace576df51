"""Checking that a datagram is a well-formed OSC packet before python-osc parses it.

python-osc trusts the sizes it reads: a bundle element whose size is negative sends its bundle
parser back to that same element forever, logging a warning each time (issue #20). So every
datagram is walked here first, every size and every step bounds-checked, and only a packet that
passes goes on to python-osc.

The layout (OSC 1.0). A packet is one message or one bundle.

- message: the address (a string starting with ``/``), then, optionally, the type tags (a string
  starting with ``,``), then one argument per tag, in order. A string is UTF-8 text, a NUL, then
  NULs (and nothing else) up to a multiple of 4 bytes. Fixed-size arguments: ``i f r m`` 4 bytes, ``h d t`` 8,
  ``T F N`` none; ``s`` a string; ``b`` an int32 size >= 0, then the bytes padded to 4; ``[ ]``
  open and close an array. The arguments end exactly at the end of the message, except that a
  last ``f`` may lack its final bytes (some clients, e.g. Reaktor, send that; python-osc pads).
- bundle: ``#bundle`` and a NUL, an 8-byte time tag, then elements until the end: an int32
  size (positive, a multiple of 4, within what is left), then that many bytes holding a message
  or a bundle.

Limits: a packet is at most ``MAX_PACKET_BYTES`` and holds at most ``MAX_MESSAGES`` messages (so
one bundle always fits the server's empty queue); bundles nest, and arrays nest, at most
``MAX_DEPTH`` deep. Type tags other than those above are refused (python-osc would log and skip
them). A string cannot hold a NUL: the first one ends it, and what follows is then neither
padding nor the next item, so the packet is refused.
"""

from __future__ import annotations

import struct

MAX_PACKET_BYTES = 8192  # a long /lmdm/eval; whole sets belong in a file (lmdm live SET --watch)
MAX_DEPTH = 4  # bundles inside bundles, and [ ] arrays inside arrays
MAX_MESSAGES = 32  # messages in one packet (a bundle), the length of the server's queue

BUNDLE = b"#bundle\x00"
BUNDLE_HEADER = len(BUNDLE) + 8  # then the time tag
FIXED_SIZE = {"i": 4, "f": 4, "r": 4, "m": 4, "h": 8, "d": 8, "t": 8, "T": 0, "F": 0, "N": 0}
TAGS = "".join(FIXED_SIZE) + "sb[]"


class MalformedPacket(ValueError):
    """The datagram is not a packet the server takes; the message says why, in one line."""


def check_packet(
    data: bytes, *, max_bytes: int = MAX_PACKET_BYTES, max_depth: int = MAX_DEPTH, max_messages: int = MAX_MESSAGES
) -> int:
    """How many messages ``data`` holds; raises ``MalformedPacket`` unless it is one well-formed OSC
    packet of at most ``max_bytes`` and ``max_messages`` messages, nested at most ``max_depth`` deep."""
    if len(data) > max_bytes:
        raise MalformedPacket(f"{len(data)} bytes is more than the {max_bytes} a packet may have")
    messages = _element(data, 0, len(data), 0, max_depth)
    if messages > max_messages:
        raise MalformedPacket(f"{messages} messages is more than the {max_messages} a packet may hold")
    return messages


def _element(data: bytes, start: int, end: int, depth: int, max_depth: int) -> int:
    """The messages in ``data[start:end]``, a message or a bundle inside ``depth`` bundles."""
    if start == end:
        raise MalformedPacket("empty")
    if data.startswith(BUNDLE, start, end):
        return _bundle(data, start, end, depth + 1, max_depth)
    if data.startswith(b"/", start, end):
        _message(data, start, end, max_depth)
        return 1
    raise MalformedPacket("neither a message (starting with /) nor a bundle (starting with #bundle)")


def _bundle(data: bytes, start: int, end: int, depth: int, max_depth: int) -> int:
    if depth > max_depth:
        raise MalformedPacket(f"bundles nested more than {max_depth} deep")
    if end - start < BUNDLE_HEADER:
        raise MalformedPacket(f"a bundle shorter than its {BUNDLE_HEADER}-byte header")
    at, count = start + BUNDLE_HEADER, 0
    while at < end:
        if end - at < 4:
            raise MalformedPacket("a bundle element without its 4-byte size")
        (size,) = struct.unpack_from(">i", data, at)
        at += 4
        if size <= 0 or size % 4:
            raise MalformedPacket(f"a bundle element of size {size} (sizes are positive multiples of 4)")
        if size > end - at:
            raise MalformedPacket(f"a bundle element of {size} bytes where {end - at} are left")
        count += _element(data, at, at + size, depth, max_depth)
        at += size
    return count


def _message(data: bytes, start: int, end: int, max_depth: int) -> None:
    _, at = _string(data, start, end, "the address")
    if at == end:
        return  # no type tags: no arguments
    if data[at] != ord(","):
        raise MalformedPacket("the type tags do not start with ','")
    tags, at = _string(data, at, end, "the type tags")
    tags = tags[1:]
    arrays = 0
    for number, tag in enumerate(tags, 1):
        what = f"argument {number} ({tag})"
        if tag in FIXED_SIZE:
            size = FIXED_SIZE[tag]
            if size > end - at and not (tag == "f" and number == len(tags) and at < end):
                raise MalformedPacket(f"{what} runs past the end of the packet")
            at = min(at + size, end)
        elif tag == "s":
            _, at = _string(data, at, end, what)
        elif tag == "b":
            at = _blob(data, at, end, what)
        elif tag == "[":
            arrays += 1
            if arrays > max_depth:
                raise MalformedPacket(f"arrays nested more than {max_depth} deep")
        elif tag == "]":
            arrays -= 1
            if arrays < 0:
                raise MalformedPacket("a ']' with no '[' in the type tags")
        else:
            raise MalformedPacket(f"type tag {tag!r} is not one of {TAGS}")
    if arrays:
        raise MalformedPacket("an array '[' is not closed in the type tags")
    if at != end:
        raise MalformedPacket(f"{end - at} bytes after the last argument")


def _string(data: bytes, start: int, end: int, what: str) -> tuple[str, int]:
    """The string at ``start`` and where the next item begins."""
    nul = data.find(b"\x00", start, end)
    if nul < 0:
        raise MalformedPacket(f"{what} has no terminating NUL")
    after = start + (nul - start) // 4 * 4 + 4
    if after > end:
        raise MalformedPacket(f"{what} is not padded to a multiple of 4 bytes")
    if data[nul:after].count(0) != after - nul:
        raise MalformedPacket(f"{what} is padded with bytes other than NUL (a NUL inside a string?)")
    try:
        return data[start:nul].decode("utf-8"), after
    except UnicodeDecodeError:
        raise MalformedPacket(f"{what} is not UTF-8 text") from None


def _blob(data: bytes, start: int, end: int, what: str) -> int:
    """Where the next item begins after the blob at ``start``."""
    if end - start < 4:
        raise MalformedPacket(f"{what} runs past the end of the packet")
    (size,) = struct.unpack_from(">i", data, start)
    padded = size + (-size % 4)
    if size < 0 or padded > end - start - 4:
        raise MalformedPacket(f"{what}: a blob of size {size} where {end - start - 4} bytes are left")
    return start + 4 + padded
