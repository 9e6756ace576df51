"""The OSC server: UDP packets in, language statements to a target, replies back to the sender.

One background thread reads datagrams and handles them one at a time, in arrival order. Each
message becomes one statement (see ``statements.py``) that goes to ``target.run(text)``; each
line the target returns goes back to the sender's address and port, from the server's own port,
as ``/lmdm/reply s`` (or ``/lmdm/error s`` when the line starts with ``error:``).

Anything wrong with a packet (not OSC, unknown address, wrong arguments, a target that raises)
is logged, answered with ``/lmdm/error``, and otherwise ignored: the server never dies on input.
Bundles are unpacked and their messages run at once (time tags are ignored). Addresses must
match exactly (no OSC wildcards).
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Protocol

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from lmdm.osc.statements import ROUTES, OscArgumentError

log = logging.getLogger(__name__)

DEFAULT_PORT = 57120  # SuperCollider's language port, the usual OSC port for live coding
REPLY = "/lmdm/reply"
ERROR = "/lmdm/error"
MAX_REPLY_CHARS = 1000  # keeps every reply datagram under 4 kB (python-osc clients read 4096 bytes)

Reply = tuple[str, str]  # (reply address, text)


class Target(Protocol):
    """What the server drives: the language interpreter. ``run`` never raises; error lines
    start with ``error:``."""

    def run(self, text: str) -> list[str]: ...


class OscError(RuntimeError):
    """The server could not start (port in use, bad host)."""


class OscServer:
    """``OscServer(target).start()``; ``port=0`` picks a free port (see ``.port``).

    Listens on 127.0.0.1 unless ``host`` says otherwise (``"0.0.0.0"`` for every interface:
    then anyone on the network can drive the session).
    """

    def __init__(self, target: Target, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
        self.target = target
        self.host = host
        self._requested_port = port
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.messages = 0  # messages run on the target
        self.rejected = 0  # packets or messages refused

    @property
    def port(self) -> int:
        """The bound port once started (useful with port=0), else the requested one."""
        if self._socket is not None:
            return self._socket.getsockname()[1]
        return self._requested_port

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> OscServer:
        if self._socket is not None:
            raise RuntimeError("the OSC server is already running")
        where = f"{self.host}:{self._requested_port}"
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                self.host, self._requested_port, type=socket.SOCK_DGRAM
            )[0]
            sock = socket.socket(family, kind, proto)
        except OSError as exc:
            raise OscError(f"cannot listen for OSC on {where}: {exc.strerror or exc}") from None
        try:
            sock.bind(address)
        except OSError as exc:
            sock.close()
            raise OscError(f"cannot listen for OSC on {where}: {exc.strerror or exc}") from None
        sock.settimeout(0.1)  # how often the thread checks for stop()
        self._socket = sock
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="lmdm-osc", daemon=True)
        self._thread.start()
        log.info("OSC server listening on %s:%d", self.host, self.port)
        return self

    def stop(self) -> None:
        """Stop the thread and close the socket. Safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> OscServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ handling (no sockets)

    def handle_packet(self, data: bytes, sender: object = None) -> list[Reply]:
        """Run every message of one datagram; the replies to send back."""
        try:
            messages = [timed.message for timed in OscPacket(data).messages]
        except Exception as exc:  # python-osc raises ParseError, but garbage can find others
            self.rejected += 1
            log.warning("ignoring %d bytes from %s that are not OSC: %s", len(data), sender, exc)
            return [(ERROR, f"error: not an OSC packet ({len(data)} bytes)")]
        replies: list[Reply] = []
        for message in messages:
            replies += self.handle_message(message.address, list(message.params), sender)
        return replies

    def handle_message(self, address: str, args: list[object], sender: object = None) -> list[Reply]:
        """Run one message: find its route, spell the statement, run it on the target."""
        route = ROUTES.get(address)
        if route is None:
            self.rejected += 1
            log.warning("ignoring unknown OSC address %s from %s", address, sender)
            return [(ERROR, f"error: unknown address {address[:100]} (the addresses are in docs/osc.md)")]
        try:
            statement = route.statement(args)
        except OscArgumentError as exc:
            self.rejected += 1
            log.warning("ignoring %s from %s: %s", address, sender, exc)
            return [(ERROR, str(exc))]
        try:
            lines = self.target.run(statement)
        except Exception as exc:  # the target promises not to raise; do not rely on it
            self.rejected += 1
            log.exception("the target raised on %r", statement)
            return [(ERROR, f"error: internal error on {statement[:100]!r}: {type(exc).__name__}: {exc}")]
        self.messages += 1
        log.debug("%s -> %r -> %r", address, statement, lines)
        return [(ERROR if str(line).startswith("error:") else REPLY, str(line)) for line in lines]

    # ------------------------------------------------------------------ the thread

    def _serve(self) -> None:
        sock = self._socket
        assert sock is not None
        while not self._stop.is_set():
            try:
                data, sender = sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError as exc:
                if self._stop.is_set():
                    break
                log.warning("OSC receive failed: %s", exc)
                continue
            try:
                replies = self.handle_packet(data, sender)
            except Exception:  # a bug above must not end the server
                log.exception("OSC packet from %s crashed its handler", sender)
                replies = [(ERROR, "error: internal error (see the server log)")]
            for address, text in replies:
                self._send(sock, address, text, sender)

    @staticmethod
    def _send(sock: socket.socket, address: str, text: str, to: object) -> None:
        if len(text) > MAX_REPLY_CHARS:
            text = text[: MAX_REPLY_CHARS - 3] + "..."
        builder = OscMessageBuilder(address=address)
        builder.add_arg(text, OscMessageBuilder.ARG_TYPE_STRING)
        try:
            sock.sendto(builder.build().dgram, to)
        except OSError as exc:
            log.debug("could not reply to %s: %s", to, exc)
