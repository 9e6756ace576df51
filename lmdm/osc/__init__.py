"""Open Sound Control: drive a live session from other programs (one address per knob).

``OscServer(target).start()`` listens on 127.0.0.1:57120; each message becomes one statement of
the lmdm language, run by ``target.run(text)``. The address table and the limits on packets are
in docs/osc.md.
"""

from lmdm.osc.packet import MAX_DEPTH, MAX_MESSAGES, MAX_PACKET_BYTES, MalformedPacket, check_packet
from lmdm.osc.server import DEFAULT_PORT, ERROR, QUEUE_STATEMENTS, REPLY, OscError, OscServer, Target
from lmdm.osc.statements import ROUTES, OscArgumentError, Route, quote, statement_for

__all__ = [
    "DEFAULT_PORT",
    "ERROR",
    "MAX_DEPTH",
    "MAX_MESSAGES",
    "MAX_PACKET_BYTES",
    "QUEUE_STATEMENTS",
    "REPLY",
    "ROUTES",
    "MalformedPacket",
    "OscArgumentError",
    "OscError",
    "OscServer",
    "Route",
    "Target",
    "check_packet",
    "quote",
    "statement_for",
]
