"""Faulty kv client: takes whatever one recv() returns for one whole reply line.

Fails the client family **client-partial-reads** (a reply that arrives one byte per
segment is read as many one-byte "replies"); every other client family passes (a
reply written whole arrives whole on loopback).
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


class OneRecvPerReply(client.LineReader):
    def line(self) -> bytes:
        chunk = textbook_client.receive(self.sock)  # the defect: no loop until the CRLF
        if not chunk:
            raise textbook_client.ServerFault("the server closed the connection before its reply")
        return chunk.removesuffix(b"\r\n")


if __name__ == "__main__":
    client.LineReader = OneRecvPerReply
    sys.exit(client.main())
