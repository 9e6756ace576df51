"""The OSC server: UDP packets in, language statements to a target, replies back to the sender.

Two background threads. The receiving thread reads each datagram, checks its structure
(``packet.py``: sizes, bounds, nesting, at most ``MAX_PACKET_BYTES`` and ``MAX_MESSAGES``), lets
python-osc parse it, and turns each message into one statement (``statements.py``), which it
puts on a bounded queue (``QUEUE_STATEMENTS``); it never waits for the target. The worker thread
takes the statements in arrival order and runs each with ``target.run(text)``; each line the
target returns goes back to the sender's address and port, from the server's own port, as
``/lmdm/reply s`` (or ``/lmdm/error s`` when the line starts with ``error:``).

Anything wrong with a packet (malformed, unknown address, wrong arguments, a target that raises,
a full queue) is logged, answered with ``/lmdm/error`` (the statements of a packet that found
the queue full: one error line, naming them), and otherwise ignored: no packet stops the server.
Log lines of one kind are written at most once a second, with a count of the ones held back
(``throttle.py``). Errors found on receipt are answered at once, so they may arrive before the
replies of statements still waiting. Bundles are unpacked and their messages run in order, as
soon as the worker gets to them (time tags are ignored). Addresses must match exactly (no OSC
wildcards).
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
from typing import Protocol

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from lmdm.osc.packet import MAX_MESSAGES, MalformedPacket, check_packet
from lmdm.osc.statements import ROUTES, OscArgumentError
from lmdm.osc.throttle import ThrottledLog

log = logging.getLogger(__name__)

DEFAULT_PORT = 57120  # SuperCollider's language port, the usual OSC port for live coding
REPLY = "/lmdm/reply"
ERROR = "/lmdm/error"
MAX_REPLY_CHARS = 1000  # keeps every reply datagram under 4 kB (python-osc clients read 4096 bytes)
QUEUE_STATEMENTS = MAX_MESSAGES  # statements waiting for the target (one whole packet always fits);
# more are dropped, with one error reply per packet
POLL_SECONDS = 0.1  # how often each thread checks for stop()

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
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._queue: queue.Queue[tuple[str, object]] = queue.Queue(QUEUE_STATEMENTS)
        self._log = ThrottledLog(log)
        self._counting = threading.Lock()
        self.messages = 0  # messages run on the target
        self.rejected = 0  # packets or messages refused
        self.dropped = 0  # statements dropped because the queue was full

    @property
    def port(self) -> int:
        """The bound port once started (useful with port=0), else the requested one."""
        if self._socket is not None:
            return self._socket.getsockname()[1]
        return self._requested_port

    @property
    def running(self) -> bool:
        return bool(self._threads) and all(thread.is_alive() for thread in self._threads)

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
        sock.settimeout(POLL_SECONDS)
        self._socket = sock
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._receive, name="lmdm-osc", daemon=True),
            threading.Thread(target=self._work, name="lmdm-osc-run", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        log.info("OSC server listening on %s:%d", self.host, self.port)
        return self

    def stop(self) -> None:
        """Stop the threads and close the socket; statements still queued are dropped. Safe to
        call twice."""
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._threads = []
        left = 0
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
            left += 1
        if left:
            log.warning("OSC stopped with %d statement(s) not run", left)
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> OscServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ handling (no sockets)

    def handle_packet(self, data: bytes, sender: object = None) -> list[Reply]:
        """Run every message of one datagram now, on the calling thread; the replies to send back."""
        replies: list[Reply] = []
        for item in self.read_packet(data, sender):
            replies += self.run_statement(item) if isinstance(item, str) else [item]
        return replies

    def handle_message(self, address: str, args: list[object], sender: object = None) -> list[Reply]:
        """Run one message now: find its route, spell the statement, run it on the target."""
        item = self.read_message(address, args, sender)
        return self.run_statement(item) if isinstance(item, str) else [item]

    def read_packet(self, data: bytes, sender: object = None) -> list[str | Reply]:
        """Check and parse one datagram: for each message, its statement or its error reply.
        Never runs the target, never raises."""
        try:
            check_packet(data)
            messages = [timed.message for timed in OscPacket(data).messages]
        except Exception as exc:  # MalformedPacket; anything python-osc still finds is caught too
            self._count("rejected")
            reason = str(exc).splitlines()[0][:200] if isinstance(exc, MalformedPacket) else type(exc).__name__
            self._log.warning("ignoring %d bytes from %s that are not a valid OSC packet: %s", len(data), sender, reason)
            return [(ERROR, f"error: not a valid OSC packet ({len(data)} bytes): {reason}")]
        return [self.read_message(message.address, list(message.params), sender) for message in messages]

    def read_message(self, address: str, args: list[object], sender: object = None) -> str | Reply:
        """The statement one message stands for, or its error reply."""
        route = ROUTES.get(address)
        if route is None:
            self._count("rejected")
            self._log.warning("ignoring unknown OSC address %s from %s", address[:100], sender)
            return (ERROR, f"error: unknown address {address[:100]} (the addresses are in docs/osc.md)")
        try:
            return route.statement(args)
        except OscArgumentError as exc:
            self._count("rejected")
            self._log.warning("ignoring %s from %s: %s", address, sender, exc)
            return (ERROR, str(exc))

    def run_statement(self, statement: str) -> list[Reply]:
        """Run one statement on the target; its lines as replies."""
        try:
            lines = self.target.run(statement)
        except Exception as exc:  # the target promises not to raise; do not rely on it
            self._count("rejected")
            self._log.warning("the target raised on %r", statement[:100], exc_info=True)
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            return [(ERROR, f"error: internal error on {statement[:100]!r}: {type(exc).__name__}: {reason}")]
        self._count("messages")
        log.debug("%r -> %r", statement[:100], lines)
        return [(ERROR if str(line).startswith("error:") else REPLY, str(line)) for line in lines]

    def _count(self, counter: str) -> None:
        with self._counting:
            setattr(self, counter, getattr(self, counter) + 1)

    # ------------------------------------------------------------------ the threads

    def _receive(self) -> None:
        """Datagrams in: check, parse, queue the statements; answer errors at once. Never waits
        for the target."""
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
                self._log.warning("OSC receive failed: %s", exc)
                continue
            try:
                items = self.read_packet(data, sender)
            except Exception:  # a bug above must not end the server
                self._log.warning("OSC packet from %s crashed its handler", sender, exc_info=True)
                items = [(ERROR, "error: internal error (see the server log)")]
            dropped: list[str] = []
            for item in items:
                if isinstance(item, str):
                    if not self._enqueue(item, sender):
                        dropped.append(item)
                else:
                    self._send(sock, *item, sender)
            if dropped:
                self._send(sock, *busy_reply(dropped), sender)

    def _enqueue(self, statement: str, sender: object) -> bool:
        """Queue a statement for the worker; False (counted and logged) if the queue is full."""
        try:
            self._queue.put_nowait((statement, sender))
        except queue.Full:
            self._count("dropped")
            self._log.warning("OSC queue full (%d statements waiting): dropped a statement from %s", QUEUE_STATEMENTS, sender)
            return False
        return True

    def _work(self) -> None:
        """Statements out of the queue, in order, run on the target; their replies sent."""
        sock = self._socket
        assert sock is not None
        while not self._stop.is_set():
            try:
                statement, sender = self._queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            try:
                replies = self.run_statement(statement)
            except Exception:  # run_statement does not raise; a bug there must not end the server
                self._log.warning("OSC statement %r crashed its handler", statement[:100], exc_info=True)
                replies = [(ERROR, "error: internal error (see the server log)")]
            for address, text in replies:
                self._send(sock, address, text, sender)

    @staticmethod
    def _send(sock: socket.socket, address: str, text: str, to: object) -> None:
        """One reply datagram; never raises (a reply that cannot go out is logged at debug level)."""
        try:
            sock.sendto(reply_datagram(address, text), to)
        except OSError as exc:
            log.debug("could not reply to %s: %s", to, exc)


def reply_datagram(address: str, text: str) -> bytes:
    """``address s text`` as OSC, ``text`` cut to ``MAX_REPLY_CHARS`` and made encodable (no NULs,
    no lone surrogates), so that building it cannot fail."""
    text = text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    if len(text) > MAX_REPLY_CHARS:
        text = text[: MAX_REPLY_CHARS - 3] + "..."
    builder = OscMessageBuilder(address=address)
    builder.add_arg(text, OscMessageBuilder.ARG_TYPE_STRING)
    return builder.build().dgram


def busy_reply(dropped: list[str]) -> Reply:
    """The one error line for the statements of a packet that found the queue full."""
    first = repr(dropped[0][:60])
    what = first if len(dropped) == 1 else f"{len(dropped)} statements, the first {first}"
    return (ERROR, f"error: busy ({QUEUE_STATEMENTS} statements waiting); dropped {what}")
