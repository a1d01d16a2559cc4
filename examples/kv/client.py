"""A small kv client: send commands, print the replies.

    python3 client.py HOST:PORT [--file IN] [--timeout S]
    python3 client.py [::1]:PORT ...
    python3 client.py unix:PATH ...

Reads one command per line (from IN, or standard input; blank lines are
skipped), sends each with its CRLF, waits for its reply line and prints it. At
the end of the input it sends its FIN and waits for the server's. After QUIT it
stops: the server ends the connection.

Exit status: 0 when every command got its reply and the server closed cleanly;
1 when the server misbehaves (resets, closes early, stays silent past --timeout,
default 5 s), with one line on standard error; 2 for a usage error.

Connecting, receiving and the command line are shared by the example clients
(examples/common/textbook_client.py); this file holds the kv protocol.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

# The shared client code lives in examples/common/ (this file runs as a script).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "common"))

import textbook_client  # noqa: E402
from textbook_client import ServerFault  # noqa: E402

MAX_LINE = 8 * 1024 * 1024 + 2  # a reply line longer than this breaks the protocol


class LineReader(textbook_client.Reader):
    """Reply lines from the socket; keeps what arrived past the last one."""

    def line(self) -> bytes:
        searched = 0
        while (end := self.buffer.find(b"\r\n", searched)) < 0:
            if len(self.buffer) > MAX_LINE:
                raise ServerFault(f"a reply line longer than {MAX_LINE} bytes")
            searched = max(0, len(self.buffer) - 1)
            self.receive_more()
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 2]
        return line


def parse(data: bytes) -> list[bytes]:
    """The command lines of the input, blank ones skipped."""
    return [line.rstrip(b"\r") for line in data.split(b"\n") if line.strip()]


def run(sock: socket.socket, commands: list[bytes], out) -> None:
    reader = LineReader(sock)
    for command in commands:
        try:
            sock.sendall(command + b"\r\n")
        except OSError as exc:
            raise ServerFault(f"cannot send {command[:40]!r}: {exc.strerror or exc}") from None
        out.write(reader.line() + b"\n")
        out.flush()
        if command.strip().upper() == b"QUIT":
            break
    else:
        sock.shutdown(socket.SHUT_WR)  # our FIN: the server answers what it has, then closes
    textbook_client.expect_close(sock, reader.buffer)


def main(argv: list[str] | None = None) -> int:
    return textbook_client.main(argv, __doc__.splitlines()[0], parse, run)


if __name__ == "__main__":
    sys.exit(main())
