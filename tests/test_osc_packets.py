"""OSC under hostile input (issue #20): the datagram validator, the queue to the target, the log
throttle, and a property: whatever bytes arrive, the server still answers the next valid message."""

from __future__ import annotations

import logging
import re
import struct
import threading
import time
from itertools import count

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from lmdm.osc import (
    ERROR, MAX_DEPTH, MAX_MESSAGES, MAX_PACKET_BYTES, QUEUE_STATEMENTS, REPLY, MalformedPacket, OscServer, check_packet,
)
from lmdm.osc.server import MAX_REPLY_CHARS, reply_datagram
from lmdm.osc.throttle import Throttle, ThrottledLog
from tests.osc_client import OscClient as Client

BUNDLE = b"#bundle\x00"
NOW = b"\x00" * 7 + b"\x01"  # the time tag "immediately"


def negative_size_bundle() -> bytes:
    """The issue's reproducer: 28 bytes, one element whose size is -4 (python-osc loops forever)."""
    packet = BUNDLE + NOW + struct.pack(">i", -4) + b"/a\x00\x00,\x00\x00\x00"
    assert len(packet) == 28
    return packet


def message(address: str, *args: object) -> bytes:
    builder = OscMessageBuilder(address=address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


def bundle(*elements: bytes) -> bytes:
    return BUNDLE + NOW + b"".join(struct.pack(">i", len(e)) + e for e in elements)


class EchoTarget:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def run(self, text: str) -> list[str]:
        self.statements.append(text)
        return [f"ok {text}"]


class GatedTarget(EchoTarget):
    """Blocks in run() until ``gate`` is set: a statement that takes a long time."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.busy = threading.Event()

    def run(self, text: str) -> list[str]:
        self.busy.set()
        self.gate.wait(10)
        return super().run(text)


# ---------------------------------------------------------------- the validator (pure)


@pytest.mark.parametrize(
    "packet,reason",
    [
        (negative_size_bundle(), "size -4"),
        (BUNDLE + NOW + struct.pack(">i", 0), "size 0"),
        (BUNDLE + NOW + struct.pack(">i", 6) + message("/a")[:6], "size 6"),
        (BUNDLE + NOW + struct.pack(">i", 400) + message("/a"), "400 bytes where 8 are left"),
        (BUNDLE + NOW + b"\x00\x00", "4-byte size"),
        (BUNDLE + b"\x00\x00", "header"),
        (bundle(b"xxxx"), "neither a message"),
        (b"", "empty"),
        (b"hello", "neither a message"),
        (message("/lmdm/eval", "x" * MAX_PACKET_BYTES), "more than the 8192"),
        (b"/lmdm/steps\x00,i\x00\x00", "argument 1 (i) runs past the end"),
        (b"/lmdm/tempo\x00,s\x00\x00abc", "argument 1 (s) has no terminating NUL"),
        (b"/lmdm/tempo", "the address has no terminating NUL"),
        (b"/ab\x00,s\x00\x00ab\x00", "not padded"),
        (b"/a\x00\x00,c\x00\x00\x00\x00\x00\x41", "type tag 'c'"),
        (b"/a\x00\x00,b\x00\x00" + struct.pack(">i", -8), "a blob of size -8"),
        (b"/a\x00\x00,b\x00\x00" + struct.pack(">i", 64) + b"abcd", "a blob of size 64"),
        (b"/\xff\x00\x00", "UTF-8"),
        (b"/a\x00\x00,s\x00\x00\xc3\x28\x00\x00", "argument 1 (s) is not UTF-8"),
        (b"/a\x00\x00ss\x00\x00", "do not start with ','"),
        (message("/a", 1) + b"\x00\x00\x00\x00", "4 bytes after the last argument"),
        (b"/a\x00\x00,[[\x00", "not closed"),
        (b"/a\x00\x00,]\x00\x00", "no '['"),
        (b"/a\x00\x00,[[[[[\x00\x00", f"more than {MAX_DEPTH} deep"),
        (bundle(*[message("/lmdm/status")] * (MAX_MESSAGES + 1)), f"more than the {MAX_MESSAGES} a packet may hold"),
        (b"/a\x00\x00,s\x00\x00a\x00b\x00", "argument 1 (s) is padded with bytes other than NUL"),  # a NUL in a string
        (b"/a\x00\x00,s\x00\x00abc\x00de\x00\x00", "4 bytes after the last argument"),  # "abc\0de"
        (b"/lmdm/status\x00\x00\x00\x01", "the address is padded"),
    ],
)
def test_malformed_packets_are_refused_with_a_reason(packet: bytes, reason: str) -> None:
    with pytest.raises(MalformedPacket, match=re.escape(reason)) as info:
        check_packet(packet)
    assert "\n" not in str(info.value)


def test_bundles_nest_up_to_the_cap() -> None:
    inner = message("/lmdm/status")
    for _ in range(MAX_DEPTH):
        inner = bundle(inner)
    assert check_packet(inner) == 1
    with pytest.raises(MalformedPacket, match=f"nested more than {MAX_DEPTH} deep"):
        check_packet(bundle(inner))


def test_well_formed_packets_pass() -> None:
    assert check_packet(message("/lmdm/status")) == 1
    assert check_packet(b"/lmdm/status\x00\x00\x00\x00") == 1  # no type tags at all
    assert check_packet(bundle()) == 0  # an empty bundle is legal
    assert check_packet(bundle(message("/a", 1.0), bundle(message("/b", "x"), message("/c")))) == 3
    assert check_packet(b"/a\x00\x00,[i]\x00\x00\x00\x00" + struct.pack(">i", 7)) == 1  # an array of one int
    assert check_packet(b"/a\x00\x00,TFN\x00\x00\x00\x00") == 1
    assert check_packet(message("/lmdm/tempo", 124.0)[:-2]) == 1  # a last float without its low bytes (Reaktor)
    assert check_packet(message("/lmdm/eval", "x" * (MAX_PACKET_BYTES - 100))) == 1
    assert check_packet(bundle(*[message("/lmdm/status")] * MAX_MESSAGES)) == MAX_MESSAGES


def test_the_endless_loop_bundle_is_refused_at_once() -> None:
    """Regression (issue #20): python-osc's bundle parser loops forever on this packet; the server
    must answer it within a second. Run on a thread so that a regression fails instead of hanging."""
    server = OscServer(EchoTarget())  # handled directly, no socket
    replies: list = []
    worker = threading.Thread(target=lambda: replies.extend(server.handle_packet(negative_size_bundle())), daemon=True)
    worker.start()
    worker.join(timeout=1.0)
    assert not worker.is_alive(), "handle_packet did not return: the bundle parser is looping"
    assert [address for address, _ in replies] == [ERROR] and server.rejected == 1


osc_args = st.one_of(  # (value, python-osc type or None to let it choose); OSC text cannot hold a NUL
    st.tuples(st.integers(-(2**31), 2**31 - 1) | st.floats(width=32) | st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=30) | st.binary(min_size=1, max_size=30)
              | st.booleans() | st.none(), st.none()),
    st.tuples(st.integers(-(2**63), 2**63 - 1), st.just("h")),
    st.tuples(st.floats(), st.just("d")),
    st.tuples(st.tuples(*[st.integers(0, 255)] * 4), st.just("m")),
)


@settings(max_examples=200, deadline=None)
@given(messages=st.lists(st.tuples(st.from_regex(r"/[a-z/]{0,20}", fullmatch=True), st.lists(osc_args, max_size=5)),
                         min_size=1, max_size=4),
       wrap=st.booleans())
def test_everything_python_osc_builds_passes(messages, wrap: bool) -> None:
    built = []
    for address, args in messages:
        builder = OscMessageBuilder(address=address)
        for value, kind in args:
            builder.add_arg(value, kind)
        built.append(builder.build())
    if wrap or len(built) > 1:
        b = OscBundleBuilder(IMMEDIATELY)
        for m in built:
            b.add_content(m)
        packet = b.build().dgram
    else:
        packet = built[0].dgram
    assert check_packet(packet) == len(built)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=1500))
def test_any_reply_text_makes_one_well_formed_datagram(text: str) -> None:
    """Whatever a target says (NULs, lone surrogates, thousands of characters), the reply builds."""
    dgram = reply_datagram(ERROR, text)
    assert check_packet(dgram) == 1
    (reply,) = OscMessage(dgram).params
    assert len(reply) <= MAX_REPLY_CHARS and "\x00" not in reply


# ---------------------------------------------------------------- the server over loopback


@pytest.fixture
def echo():
    target = EchoTarget()
    with OscServer(target, port=0) as server:
        client = Client(server.port)
        yield server, client, target
        client.close()


def test_the_negative_size_bundle_neither_freezes_the_server_nor_floods_the_log(echo, caplog) -> None:
    server, client, target = echo
    with caplog.at_level(logging.WARNING):
        client.send_raw(negative_size_bundle())
        assert client.replies(1) == [(ERROR, "error: not a valid OSC packet (28 bytes): a bundle element of size -4 "
                                             "(sizes are positive multiples of 4)")]
        client.send_raw(message("/lmdm/status"))
        assert client.replies(1) == [(REPLY, "ok status")]
    assert server.running and target.statements == ["status"]
    assert len(caplog.records) <= 2


def test_a_huge_eval_is_refused_before_it_reaches_the_target(echo) -> None:
    server, client, target = echo
    client.send_raw(message("/lmdm/eval", "tempo 120; " * 5500))  # 60 kB
    ((address, text),) = client.replies(1)
    assert address == ERROR and f"more than the {MAX_PACKET_BYTES} a packet may have" in text
    assert target.statements == [] and server.rejected == 1


def test_a_slow_statement_does_not_block_receiving_and_a_full_queue_drops() -> None:
    target = GatedTarget()
    with OscServer(target, port=0) as server:
        client = Client(server.port)
        try:
            client.send_raw(message("/lmdm/eval", "first"))
            assert target.busy.wait(3)  # the worker is stuck in run("first")
            client.send_raw(b"garbage")  # answered at once, by the receiving thread
            client.send_raw(message("/no/such"))
            assert [address for address, _ in client.replies(2)] == [ERROR, ERROR]
            for n in range(QUEUE_STATEMENTS):
                client.send_raw(message("/lmdm/eval", f"queued {n}"))
            client.send_raw(message("/lmdm/eval", "one too many"))
            ((address, text),) = client.replies(1)
            assert address == ERROR and text.startswith(f"error: busy ({QUEUE_STATEMENTS} statements waiting)")
            assert "one too many" in text and server.dropped == 1
            target.gate.set()
            replies = client.replies(1 + QUEUE_STATEMENTS, timeout=5)
            assert [text for _, text in replies] == ["ok first", *(f"ok queued {n}" for n in range(QUEUE_STATEMENTS))]
        finally:
            target.gate.set()
            client.close()


def test_a_bundle_that_finds_the_queue_full_gets_one_error_line() -> None:
    target = GatedTarget()
    with OscServer(target, port=0) as server:
        client = Client(server.port)
        try:
            client.send_raw(message("/lmdm/eval", "first"))
            assert target.busy.wait(3)
            client.send_raw(bundle(*[message("/lmdm/eval", f"a {n}") for n in range(QUEUE_STATEMENTS - 2)]))
            client.send_raw(bundle(*[message("/lmdm/eval", f"b {n}") for n in range(5)]))  # 2 fit, 3 do not
            ((address, text),) = client.replies(1)
            assert (address, text) == (ERROR, f"error: busy ({QUEUE_STATEMENTS} statements waiting); "
                                              "dropped 3 statements, the first 'b 2'")
            assert client.replies(1, timeout=0.3) == [] and server.dropped == 3
            target.gate.set()
            texts = [text for _, text in client.replies(1 + QUEUE_STATEMENTS, timeout=5)]
            assert texts == ["ok first", *(f"ok a {n}" for n in range(QUEUE_STATEMENTS - 2)), "ok b 0", "ok b 1"]
        finally:
            target.gate.set()
            client.close()


def test_a_flood_of_bad_packets_writes_few_log_lines(caplog) -> None:
    server = OscServer(EchoTarget())  # handled directly, no socket
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="lmdm.osc.server"):
        for _ in range(500):
            server.handle_packet(negative_size_bundle(), ("127.0.0.1", 9))
            server.handle_packet(message("/no/such"), ("127.0.0.1", 9))
    elapsed = time.monotonic() - started
    assert server.rejected == 1000
    assert 2 <= len(caplog.records) <= 2 * (1 + int(elapsed))  # one line per kind per second


def test_the_throttle_lets_one_line_a_second_through_with_a_count(caplog) -> None:
    tenths = [0]
    lines = ThrottledLog(logging.getLogger("test.throttle"), Throttle(1.0, clock=lambda: tenths[0] / 10))
    with caplog.at_level(logging.WARNING, logger="test.throttle"):
        for step in range(25):  # 2.5 s of one line every 0.1 s, and another kind once
            lines.warning("bad packet from %s", step)
            tenths[0] += 1
        lines.warning("other %s", 1)
    assert [r.getMessage() for r in caplog.records] == [
        "bad packet from 0", "bad packet from 10 (and 9 more like it since the last one)",
        "bad packet from 20 (and 9 more like it since the last one)", "other 1",
    ]


# ---------------------------------------------------------------- the property


@pytest.fixture(scope="module")
def shared():
    with OscServer(EchoTarget(), port=0) as server:
        client = Client(server.port)
        yield server, client
        client.close()


chunks = st.one_of(
    st.sampled_from([BUNDLE, NOW, b"/lmdm/eval\x00\x00", b"/lmdm/status\x00\x00\x00\x00", b",s\x00\x00", b",b\x00\x00",
                     b",[[\x00", b"\x00" * 4]),
    st.integers(-(2**31), 2**31 - 1).map(lambda n: struct.pack(">i", n)),
    st.integers(-8, 64).map(lambda n: struct.pack(">i", n)),
    st.binary(max_size=16),
)
datagrams = st.one_of(st.binary(max_size=300), st.lists(chunks, max_size=12).map(b"".join))
marks = count()


@settings(max_examples=300, deadline=None)
@given(data=datagrams)
def test_what_passes_the_check_python_osc_parses(data: bytes) -> None:
    """The validator is never looser than python-osc: a packet it passes parses, message for message."""
    try:
        messages = check_packet(data)
    except MalformedPacket:
        return
    assert len(OscPacket(data).messages) == messages


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=datagrams)
@example(data=negative_size_bundle())
@example(data=BUNDLE + NOW + struct.pack(">i", -16) + message("/lmdm/status"))
def test_any_datagram_is_answered_or_dropped_and_the_server_answers_the_next_message(shared, data: bytes) -> None:
    """Whatever bytes arrive: the replies to them are well-formed one-line /lmdm/reply or
    /lmdm/error messages (or there are none: an empty datagram may be dropped by the socket), and
    a good message sent next is answered."""
    server, client = shared
    client.send_raw(data)
    mark = f"mark {next(marks)}"
    client.send_raw(message("/lmdm/eval", mark))
    before: list[tuple[str, str]] = []
    while (got := client.replies(1)) and got[0][1:] != (f"ok {mark}",):
        before += got
    assert got, f"no answer after {data!r}"
    assert len(before) <= MAX_MESSAGES
    for address, *params in before:
        assert address in (REPLY, ERROR) and len(params) == 1 and "\n" not in params[0]
        assert address == REPLY or params[0].startswith("error: ")
    assert server.running
