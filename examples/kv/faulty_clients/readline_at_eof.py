"""Faulty kv client: like file.readline(), takes what came before the server's FIN for a line.

A reply line cut by the server's FIN (no CRLF) is printed as if complete, and every
later "reply" is empty: the client ends with success. Fails the client family
**client-short-body**; every other client family passes (a reset is still an error).
Proven by tests/test_proto_clients.py.

    python3 readline_at_eof.py HOST:PORT --file IN [--timeout S]     like ../client.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import client  # noqa: E402
import textbook_client  # noqa: E402 (on sys.path once client is imported)

FAMILY = "client-short-body"
ALSO_FAILS = ()
TRANSPORTS = ("tcp",)


class ReadlineReader(client.LineReader):
    def line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            chunk = textbook_client.receive(self.sock)
            if not chunk:  # the defect: the FIN ends the line, complete or not
                line = bytes(self.buffer)
                self.buffer.clear()
                return line
            self.buffer += chunk
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 2]
        return line


if __name__ == "__main__":
    client.LineReader = ReadlineReader
    sys.exit(client.main())
