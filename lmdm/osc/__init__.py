"""Open Sound Control: drive a live session from other programs (one address per knob).

``OscServer(target).start()`` listens on 127.0.0.1:57120; each message becomes one statement of
the lmdm language, run by ``target.run(text)``. The address table is in docs/osc.md.
"""

from lmdm.osc.server import DEFAULT_PORT, ERROR, REPLY, OscError, OscServer, Target
from lmdm.osc.statements import ROUTES, OscArgumentError, Route, quote, statement_for

__all__ = [
    "DEFAULT_PORT",
    "ERROR",
    "REPLY",
    "ROUTES",
    "OscArgumentError",
    "OscError",
    "OscServer",
    "Route",
    "Target",
    "quote",
    "statement_for",
]
