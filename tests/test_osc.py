"""OSC: statement spelling, and the server end to end over 127.0.0.1 with fake targets."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from lmdm.osc import ERROR, REPLY, ROUTES, OscArgumentError, OscError, OscServer, quote, statement_for
from tests.osc_client import OscClient as Client

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "osc_client.py"

# ---------------------------------------------------------------- statements (pure)


@pytest.mark.parametrize(
    "address,args,statement",
    [
        ("/lmdm/eval", ["tempo 120; steps 4"], "tempo 120; steps 4"),
        ("/lmdm/prompt", ["acid"], 'prompt "acid"'),
        ("/lmdm/prompt", ["dub techno", 3], 'prompt "dub techno" over 3 blocks'),
        ("/lmdm/prompt", ["dub techno", 1.5], 'prompt "dub techno" over 1.5 blocks'),
        ("/lmdm/tempo", [124.0], "tempo 124"),
        ("/lmdm/tempo", [124], "tempo 124"),
        ("/lmdm/tempo", [97.5], "tempo 97.5"),
        ("/lmdm/steps", [6], "steps 6"),
        ("/lmdm/steps", [6.0], "steps 6"),
        ("/lmdm/cfg", [1.5], "cfg 1.5"),
        ("/lmdm/cfg", [0.6000000238418579], "cfg 0.6"),  # 0.6 after a float32 trip
        ("/lmdm/seed", [-42], "seed -42"),
        ("/lmdm/delay/strength", [0.6], "delay strength 0.6"),
        ("/lmdm/delay/strength", [1e-8], "delay strength 0.00000001"),
        ("/lmdm/reset", [], "reset"),
        ("/lmdm/status", [], "status"),
    ],
)
def test_each_address_spells_one_statement(address: str, args: list, statement: str) -> None:
    assert statement_for(address, args) == statement


@pytest.mark.parametrize(
    "address,args",
    [
        ("/lmdm/tempo", []),
        ("/lmdm/tempo", ["fast"]),
        ("/lmdm/tempo", [120.0, 1.0]),
        ("/lmdm/tempo", [float("nan")]),
        ("/lmdm/tempo", [float("inf")]),
        ("/lmdm/cfg", [True]),
        ("/lmdm/steps", [6.5]),
        ("/lmdm/seed", ["42"]),
        ("/lmdm/prompt", [42]),
        ("/lmdm/prompt", ["acid", "slowly"]),
        ("/lmdm/eval", [b"tempo 120"]),
        ("/lmdm/reset", [1]),
        ("/lmdm/status", [None]),
    ],
)
def test_wrong_arguments_are_one_line_errors(address: str, args: list) -> None:
    with pytest.raises(OscArgumentError) as info:
        statement_for(address, args)
    text = str(info.value)
    assert text.startswith(f"error: {address} takes ") and "\n" not in text


def test_quote_escapes_quotes_backslashes_and_line_breaks() -> None:
    assert quote('say "hi"') == '"say \\"hi\\""'
    assert quote("back\\slash") == '"back\\\\slash"'
    assert quote("two\nlines\tand\x00nul") == '"two lines and nul"'


osc_args = st.lists(
    st.one_of(st.text(max_size=20), st.integers(-(2**31), 2**31 - 1), st.floats(width=32),
              st.booleans(), st.none(), st.binary(max_size=8)),
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(address=st.sampled_from(sorted(ROUTES)), args=osc_args)
def test_any_arguments_give_a_statement_or_an_argument_error(address: str, args: list) -> None:
    try:
        statement = statement_for(address, args)
    except OscArgumentError:
        return
    assert isinstance(statement, str) and (address == "/lmdm/eval" or "\n" not in statement)


def test_statements_parse_in_the_language() -> None:
    parser = pytest.importorskip("lmdm_dsl.parser")
    if not hasattr(parser, "parse"):
        pytest.skip("lmdm_dsl.parser.parse is not available")
    tricky = 'a "quoted" \\ prompt\nwith a line break'
    for address, args in [
        ("/lmdm/prompt", [tricky, 2.0]), ("/lmdm/tempo", [124.5]), ("/lmdm/steps", [6]),
        ("/lmdm/cfg", [1.5]), ("/lmdm/seed", [7]), ("/lmdm/reset", []), ("/lmdm/status", []),
        ("/lmdm/delay/strength", [0.6]),
    ]:
        values = parser.parse(statement_for(address, args))
        assert len(values) == 1, (address, values)
    (prompt,) = parser.parse(statement_for("/lmdm/prompt", [tricky]))
    assert prompt.terms[0].text == tricky.replace("\n", " ")


# ---------------------------------------------------------------- fake targets


class FakeTarget:
    """Records statements; answers like the interpreter (``error:`` lines for errors)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def run(self, text: str) -> list[str]:
        self.statements.append(text)
        if text == "status":
            return ["tempo 120 bpm", "steps 6", "cfg 1.5"]
        if "999" in text:
            return ["error: 999 is out of range"]
        return [f"ok {text}"]


class RaisingTarget:
    def run(self, text: str) -> list[str]:
        raise RuntimeError("interpreter bug")


@pytest.fixture
def target() -> FakeTarget:
    return FakeTarget()


@pytest.fixture
def server(target: FakeTarget):
    with OscServer(target, port=0) as running:
        yield running


@pytest.fixture
def client(server: OscServer):
    c = Client(server.port)
    yield c
    c.close()


# ---------------------------------------------------------------- end to end over loopback


def test_typed_addresses_reach_the_target_and_replies_come_back(
    server: OscServer, client: Client, target: FakeTarget
) -> None:
    client.send("/lmdm/tempo", 124.0)
    assert client.replies(1) == [(REPLY, "ok tempo 124")]
    client.send("/lmdm/prompt", 'acid "303"', 2)
    assert client.replies(1) == [(REPLY, 'ok prompt "acid \\"303\\"" over 2 blocks')]
    client.send("/lmdm/status")
    assert client.replies(3) == [(REPLY, "tempo 120 bpm"), (REPLY, "steps 6"), (REPLY, "cfg 1.5")]
    client.send("/lmdm/steps", 999)
    assert client.replies(1) == [(ERROR, "error: 999 is out of range")]
    for address, arg in [("/lmdm/cfg", 1.5), ("/lmdm/seed", 7), ("/lmdm/delay/strength", 0.25),
                         ("/lmdm/eval", "tempo 90")]:
        client.send(address, arg)
    client.send("/lmdm/reset")
    assert len(client.replies(5)) == 5
    assert target.statements == [
        "tempo 124", 'prompt "acid \\"303\\"" over 2 blocks', "status", "steps 999",
        "cfg 1.5", "seed 7", "delay strength 0.25", "tempo 90", "reset",
    ]
    assert server.messages == 9 and server.rejected == 0


def test_malformed_packets_are_answered_with_errors_and_never_kill_the_server(
    server: OscServer, client: Client, target: FakeTarget
) -> None:
    bad = [
        b"\xff\xfe garbage \x00\x01",
        b"",
        b"/lmdm/steps\x00,i\x00\x00",  # type tag says int, no int follows
        b"/lmdm/tempo\x00,s\x00\x00abc",  # an unterminated string
        b"#bundle\x00\x00\x00",  # truncated bundle
        bytes(range(256)) * 4,
    ]
    for data in bad:
        client.send_raw(data)
    client.send("/no/such/address", 1)
    client.send("/lmdm/tempo", "fast")
    client.send("/lmdm/steps")
    client.send("/lmdm/eval", b"\x00\x01")  # a blob, not text
    replies = client.replies(len(bad) + 4)
    assert len(replies) == len(bad) + 4
    assert all(address == ERROR and text.startswith("error:") for address, text in replies)
    assert any("unknown address /no/such/address" in text for _, text in replies)
    assert any("/lmdm/tempo takes bpm:f; got 'fast':s" in text for _, text in replies)
    assert target.statements == []
    assert server.running
    client.send("/lmdm/status")
    assert client.replies(3)[0] == (REPLY, "tempo 120 bpm")


def test_a_bundle_runs_each_message(server: OscServer, client: Client, target: FakeTarget) -> None:
    bundle = OscBundleBuilder(IMMEDIATELY)
    for address, value in [("/lmdm/tempo", 100.0), ("/lmdm/cfg", 2.0)]:
        message = OscMessageBuilder(address=address)
        message.add_arg(value)
        bundle.add_content(message.build())
    client.send_raw(bundle.build().dgram)
    assert client.replies(2) == [(REPLY, "ok tempo 100"), (REPLY, "ok cfg 2")]


def test_a_target_that_raises_gives_an_error_reply() -> None:
    with OscServer(RaisingTarget(), port=0) as server:
        client = Client(server.port)
        try:
            client.send("/lmdm/tempo", 120.0)
            ((address, text),) = client.replies(1)
            assert address == ERROR and "interpreter bug" in text
            client.send("/lmdm/reset")
            assert client.replies(1)[0][0] == ERROR and server.running
        finally:
            client.close()


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_random_bytes_never_raise(data: bytes) -> None:
    server = OscServer(FakeTarget(), port=0)  # handled directly: no socket needed
    replies = server.handle_packet(data, ("127.0.0.1", 9))
    assert all(address in (REPLY, ERROR) and isinstance(text, str) for address, text in replies)


def test_long_replies_are_truncated_to_fit_one_datagram(client: Client, target: FakeTarget) -> None:
    client.send("/lmdm/eval", "x" * 5000)
    ((address, text),) = client.replies(1)
    assert address == REPLY and len(text) == 1000 and text.endswith("...")


def test_no_reply_for_a_statement_without_output(server: OscServer, client: Client) -> None:
    server.target = type("Quiet", (), {"run": lambda self, text: []})()
    client.send("/lmdm/tempo", 120.0)
    assert client.silent_for(0.3)
    assert server.messages == 1


# ---------------------------------------------------------------- lifecycle


def test_server_binds_loopback_by_default_and_stops_cleanly(target: FakeTarget) -> None:
    server = OscServer(target, port=0)
    assert server.host == "127.0.0.1" and server.port == 0
    with server:
        assert server.running and server.port > 0
        assert server._socket.getsockname()[0] == "127.0.0.1"
        with pytest.raises(RuntimeError, match="already running"):
            server.start()
        started = time.monotonic()
    assert time.monotonic() - started < 1.0
    assert not server.running
    server.stop()  # twice is fine


def test_a_busy_port_is_a_one_line_error(server: OscServer, target: FakeTarget) -> None:
    with pytest.raises(OscError, match=f"cannot listen for OSC on 127.0.0.1:{server.port}") as info:
        OscServer(target, port=server.port).start()
    assert "\n" not in str(info.value)
    with pytest.raises(OscError, match="cannot listen"):
        OscServer(target, host="no.such.host.invalid", port=0).start()


# ---------------------------------------------------------------- examples/osc_client.py


def test_example_client_drives_a_server(server: OscServer, target: FakeTarget) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--port", str(server.port), "--timeout", "3"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "tempo 120 bpm" in result.stdout and "ok tempo 124" in result.stdout
    assert target.statements[:3] == ["status", "tempo 124", 'prompt "dub techno, deep chords" over 4 blocks']


def test_example_client_gives_up_cleanly_when_nobody_answers() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never answers
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, str(EXAMPLE), "--port", str(port), "--timeout", "0.5"],
            capture_output=True, text=True, timeout=30,
        )
    assert result.returncode == 1 and time.monotonic() - started < 10
    assert "no answer" in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------- sketch, delay, jam (issue 6)


@pytest.mark.parametrize(
    "address,args,statement",
    [
        ("/lmdm/sketch", ["melody", "c4 e4 g4 ~"], 'sketch melody "c4 e4 g4 ~"'),
        ("/lmdm/sketch", ["Rhythm", "x ~ x x"], 'sketch rhythm "x ~ x x"'),
        ("/lmdm/sketch", ["loudness"], "sketch loudness off"),
        ("/lmdm/sketch", ["melody", "off"], "sketch melody off"),
        ("/lmdm/sketch", ["off"], "sketch off"),
        ("/lmdm/delay", [2], "delay 2 blocks"),
        ("/lmdm/delay", [0.75, 0.6, 0.3, 0.5], "delay 0.75 blocks strength 0.6 feedback 0.3 mix 0.5"),
        ("/lmdm/delay/off", [], "delay off"),
        ("/lmdm/delay/feedback", [0.4], "delay feedback 0.4"),
        ("/lmdm/delay/mix", [0.2], "delay mix 0.2"),
        ("/lmdm/delay/prompt", ['glass "bells"'], 'delay prompt "glass \\"bells\\""'),
        ("/lmdm/jam", [1], "jam on"),
        ("/lmdm/jam", [0], "jam off"),
        ("/lmdm/jam/follow", ["beat"], "jam beat"),
        ("/lmdm/jam/follow", ["key"], "jam key"),
        ("/lmdm/jam/follow", [" Beat "], "jam beat"),
        ("/lmdm/jam/follow", ["listen"], "jam listen"),
    ],
)
def test_conditioning_addresses_spell_statements_of_the_language(address: str, args: list, statement: str) -> None:
    assert statement_for(address, args) == statement
    parser = pytest.importorskip("lmdm_dsl.parser")
    assert len(parser.parse(statement)) == 1


@pytest.mark.parametrize(
    "address,args",
    [("/lmdm/sketch", []), ("/lmdm/sketch", ["melody; reset"]), ("/lmdm/sketch", ["tempo", "x"]),
     ("/lmdm/delay", []), ("/lmdm/delay", ["1"]), ("/lmdm/jam", [0.5]), ("/lmdm/delay/off", [1]),
     ("/lmdm/jam/follow", ["\n"]), ("/lmdm/jam/follow", ["beat; reset"]), ("/lmdm/jam/follow", ["telepathy"])],
)
def test_conditioning_addresses_refuse_what_does_not_fit(address: str, args: list) -> None:
    with pytest.raises(OscArgumentError) as info:
        statement_for(address, args)
    assert str(info.value).startswith(f"error: {address}")
