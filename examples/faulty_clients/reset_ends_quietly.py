"""Faulty client (kv or frames): takes a reset for the server hanging up and ends with
success.

ECONNRESET from recv() stops the client quietly, exit status 0, with a reply cut in
the middle. Fails the client family **client-reset-mid-response**; every other
client family passes (a FIN inside a reply is still an error). Proven by
tests/test_proto_clients.py over tcp, and for kv over unix too (where the harness's
close() with the request unread is the client's ECONNRESET).

    python3 examples/faulty_clients/reset_ends_quietly.py --protocol kv|frames \\
        HOST:PORT --file IN [--timeout S]                  like examples/<protocol>/client.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "common"))

import textbook_client  # noqa: E402
from example_protocols import protocol_module  # noqa: E402

FAMILY = "client-reset-mid-response"
ALSO_FAILS = ()
TRANSPORTS = {"kv": ("tcp", "unix"), "frames": ("tcp",)}


class HungUp(Exception):
    """The server reset the connection."""


def receive_reset_as_goodbye(sock, silence="no reply"):
    try:
        return sock.recv(65536)
    except TimeoutError:
        raise textbook_client.ServerFault(f"{silence} within {sock.gettimeout():g} s") from None
    except ConnectionResetError:
        raise HungUp from None


def main() -> int:
    _, client, rest = protocol_module("client")
    textbook_client.receive = receive_reset_as_goodbye
    try:
        return client.main(rest)
    except HungUp:
        return 0  # the defect: a reset is taken for a normal end


if __name__ == "__main__":
    sys.exit(main())
