"""One OSC test client for every test that talks to an lmdm OSC server over real UDP on 127.0.0.1
(tests/test_osc.py, test_osc_packets.py, test_live.py, test_midi.py): send messages or raw bytes,
collect replies with timeouts only (a test never hangs on a server that stays silent)."""

from __future__ import annotations

import socket
import time

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder


def message(address: str, *args: object) -> bytes:
    """One OSC message's datagram."""
    builder = OscMessageBuilder(address=address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


class OscClient:
    """A UDP socket on 127.0.0.1 that sends OSC to ``port`` and collects the replies."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))

    def send(self, address: str, *args: object) -> None:
        self.send_raw(message(address, *args))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, ("127.0.0.1", self.port))

    def replies(self, count: int, timeout: float = 3.0) -> list[tuple[str, ...]]:
        """The next ``count`` replies as (address, *params) (fewer only if they do not come in time)."""
        got: list[tuple[str, ...]] = []
        deadline = time.monotonic() + timeout
        while len(got) < count and (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                break
            reply = OscMessage(data)
            got.append((reply.address, *reply.params))
        return got

    def ask(self, address: str, *args: object, count: int = 1, timeout: float = 3.0) -> list[tuple[str, ...]]:
        """Send one message and collect ``count`` replies."""
        self.send(address, *args)
        return self.replies(count, timeout)

    def status(self) -> str:
        """The text of ``/lmdm/status``'s reply ("" if none came)."""
        got = self.ask("/lmdm/status")
        return str(got[0][1]) if got and len(got[0]) > 1 else ""

    def wait_for(self, text: str, timeout: float = 3.0) -> bool:
        """Read replies until one is ``text`` (others, e.g. errors for earlier packets, are skipped)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            got = self.replies(1, left)
            if not got:
                return False
            if got[0][1:] == (text,):
                return True
        return False

    def silent_for(self, seconds: float) -> bool:
        """No reply comes for ``seconds``."""
        self.sock.settimeout(seconds)
        try:
            self.sock.recvfrom(65535)
        except socket.timeout:
            return True
        return False

    def close(self) -> None:
        self.sock.close()
