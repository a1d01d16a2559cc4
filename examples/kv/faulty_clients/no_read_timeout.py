"""Faulty kv client: bounds connect() but not recv(): a silent server holds it forever.

Fails the client family **client-no-answer** (stopped by the harness at its stated
limit); every other client family passes. Proven by tests/test_proto_clients.py.

    python3 no_read_timeout.py HOST:PORT --file IN [--timeout S]     like ../client.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import client  # noqa: E402
import textbook_client  # noqa: E402 (on sys.path once client is imported)

FAMILY = "client-no-answer"
ALSO_FAILS = ()
TRANSPORTS = ("tcp",)

connect_with_timeout = textbook_client.connect


def connect_then_wait_forever(where, timeout):
    sock = connect_with_timeout(where, timeout)
    sock.settimeout(None)  # the defect: every recv() may now block forever
    return sock


if __name__ == "__main__":
    textbook_client.connect = connect_then_wait_forever
    sys.exit(client.main())
