"""Faulty frames client: takes whatever one recv() returns for one whole reply frame.

It skips the 4-byte length and keeps the rest of that one piece as the payload. A
reply that arrives one byte per segment yields an empty "frame". Fails the client
family **client-partial-reads**; every other client family passes (a reply written
whole arrives whole on loopback).
Proven by tests/test_proto_clients.py over tcp.

    python3 one_recv.py HOST:PORT --file IN [--timeout S]     like ../client.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import client  # noqa: E402
import textbook_client  # noqa: E402 (on sys.path once client is imported)

FAMILY = "client-partial-reads"
ALSO_FAILS = ()
TRANSPORTS = ("tcp",)


class OneRecvPerFrame(client.FrameReader):
    def frame(self) -> bytes:
        chunk = textbook_client.receive(self.sock)  # the defect: no loop until the length is met
        if not chunk:
            raise textbook_client.ServerFault("the server closed the connection before its reply")
        return chunk[client.HEADER:]


if __name__ == "__main__":
    client.FrameReader = OneRecvPerFrame
    sys.exit(client.main())
