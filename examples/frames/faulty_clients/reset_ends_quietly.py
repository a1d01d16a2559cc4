"""Faulty frames client: takes a reset for the server hanging up and ends with success.

ECONNRESET from recv() stops the client quietly, exit status 0, with a reply cut in
the middle. Fails the client family **client-reset-mid-response**; every other
client family passes (a FIN inside a frame is still an error). Proven by
tests/test_proto_clients.py over tcp (the kv variant is also proven over unix).

    python3 reset_ends_quietly.py HOST:PORT --file IN [--timeout S]     like ../client.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import client  # noqa: E402

FAMILY = "client-reset-mid-response"
ALSO_FAILS = ()
TRANSPORTS = ("tcp",)


class HungUp(Exception):
    """The server reset the connection."""


def receive_reset_as_goodbye(sock, waiting_for="a reply"):
    try:
        return sock.recv(65536)
    except TimeoutError:
        raise client.ServerFault(f"no {waiting_for} within {sock.gettimeout():g} s") from None
    except ConnectionResetError:
        raise HungUp from None


def main() -> int:
    client.receive = receive_reset_as_goodbye
    try:
        return client.main()
    except HungUp:
        return 0  # the defect: a reset is taken for a normal end


if __name__ == "__main__":
    sys.exit(main())
