"""Faulty frames client: connect() without a timeout: a full accept queue hangs it.

The timeout is set only once connected. TCP retransmits the dropped SYN for a minute
or more; a blocking Unix connect() waits for room in the queue forever. Fails the
client family **client-accept-late** (a full queue that is never served); every other
client family passes. Proven by tests/test_proto_clients.py.

    python3 blocking_connect.py HOST:PORT --file IN [--timeout S]     like ../client.py
"""

import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import client  # noqa: E402
import textbook_client  # noqa: E402 (on sys.path once client is imported)

FAMILY = "client-accept-late"
ALSO_FAILS = ()
TRANSPORTS = ("tcp",)


def connect_unbounded(where, timeout):
    if where.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(where[len("unix:"):])  # the defect: no timeout until connected
    else:
        host, _, port = where.rpartition(":")
        sock = socket.create_connection((host.strip("[]"), int(port)))  # the defect
    sock.settimeout(timeout)
    return sock


if __name__ == "__main__":
    textbook_client.connect = connect_unbounded
    sys.exit(client.main())
