"""Drive a running ``lmdm live --osc-port 57120`` from another process, over OSC.

    .venv/bin/python examples/osc_client.py                     # talk to 127.0.0.1:57120
    .venv/bin/python examples/osc_client.py --port 57121
    .venv/bin/python examples/osc_client.py --eval "tempo 128" --eval 'prompt "acid" over 2 blocks'

It first asks for /lmdm/status; if nothing answers within --timeout seconds it says so and
exits with status 1. Then it turns a few knobs (or sends your --eval statements) and prints each
reply line (/lmdm/reply) and error (/lmdm/error). The addresses are listed in docs/osc.md.
"""

from __future__ import annotations

import argparse
import sys

from pythonosc.osc_message import OscMessage
from pythonosc.udp_client import SimpleUDPClient

DEMO = [
    ("/lmdm/tempo", [124.0]),
    ("/lmdm/prompt", ["dub techno, deep chords", 4.0]),  # glide over 4 blocks
    ("/lmdm/cfg", [1.5]),
    ("/lmdm/steps", [6]),
    ("/lmdm/status", []),
]


def print_replies(client: SimpleUDPClient, first_wait: float, quiet: float = 0.3) -> int:
    """Print replies until none comes for a while: up to ``first_wait`` s for the first, then
    ``quiet`` s for each next one. Returns how many arrived."""
    count, wait = 0, first_wait
    while count < 1000:
        try:
            data = client.receive(wait)
        except OSError:  # e.g. "connection refused": nobody listens on that port
            return count
        if not data:
            return count
        try:
            message = OscMessage(data)
        except Exception:
            print(f"  ? {len(data)} bytes that are not OSC")
            continue
        text = " ".join(str(arg) for arg in message.params)
        print(f"  ! {text}" if message.address == "/lmdm/error" else f"  {text}")
        count, wait = count + 1, quiet
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Send a few OSC messages to a running lmdm live.")
    parser.add_argument("--host", default="127.0.0.1", help="where lmdm listens (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=57120, help="lmdm's --osc-port (default 57120)")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for an answer")
    parser.add_argument("--eval", action="append", metavar="STATEMENT",
                        help="send this statement via /lmdm/eval instead of the demo (repeatable)")
    args = parser.parse_args(argv)

    try:
        client = SimpleUDPClient(args.host, args.port)
    except OSError as exc:  # e.g. an unknown host name
        print(f"cannot talk to {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"> /lmdm/status  (to {args.host}:{args.port})")
        client.send_message("/lmdm/status", [])
        if print_replies(client, args.timeout) == 0:
            print(f"no answer from {args.host}:{args.port} within {args.timeout:g} s: "
                  f"is `lmdm live --osc-port {args.port}` running?", file=sys.stderr)
            return 1
        messages = [("/lmdm/eval", [text]) for text in args.eval] if args.eval else DEMO
        for address, values in messages:
            print(f"> {address} {' '.join(repr(v) for v in values)}".rstrip())
            client.send_message(address, values)
            print_replies(client, first_wait=0.5)
    except OSError as exc:
        print(f"cannot talk to {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
