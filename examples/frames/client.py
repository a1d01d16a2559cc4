"""A small frames client: send requests, print the replies.

    python3 client.py HOST:PORT [--file IN] [--timeout S]
    python3 client.py [::1]:PORT ...
    python3 client.py unix:PATH ...

Reads one request per line (from IN, or standard input; blank lines are
skipped): the opcode in hex, then the body in hex (spaces allowed), e.g.
``01 68656c6c6f`` (ECHO "hello") or ``03`` (INFO). Sends each with its 4-byte
length prefix, waits for its reply and prints it the same way: ``81 68656c6c6f``.
At the end of the input it sends its FIN and waits for the server's.

Exit status: 0 when every request got its reply and the server closed cleanly;
1 when the server misbehaves (resets, closes early, stays silent past --timeout,
default 5 s), with one line on standard error; 2 for a usage error or bad input.

Connecting, receiving and the command line are shared by the example clients
(examples/common/textbook_client.py); this file holds the frames protocol.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

# The shared client code lives in examples/common/ (this file runs as a script).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "common"))

import textbook_client  # noqa: E402
from textbook_client import ServerFault  # noqa: E402

HEADER = 4
MAX_PAYLOAD = 16 * 1024 * 1024


def parse_request(number: int, line: str) -> bytes:
    """``OPCODE-HEX [BODY-HEX]`` as a payload; ValueError naming the line."""
    opcode, _, body = line.strip().partition(" ")
    try:
        if len(opcode) != 2:
            raise ValueError(f"the opcode is one byte in hex (2 digits), not {opcode!r}")
        return bytes.fromhex(opcode) + bytes.fromhex(body)
    except ValueError as exc:
        raise ValueError(f"line {number}: {exc}") from None


def parse(data: bytes) -> list[bytes]:
    """The requests of the input (ASCII), blank lines skipped; ValueError naming a line."""
    return [parse_request(number, line)
            for number, line in enumerate(data.decode("ascii").splitlines(), 1) if line.strip()]


class FrameReader(textbook_client.Reader):
    """Reply payloads from the socket; keeps what arrived past the last one."""

    def frame(self) -> bytes:
        while True:
            if len(self.buffer) >= HEADER:
                length = int.from_bytes(self.buffer[:HEADER], "big")
                if length > MAX_PAYLOAD:
                    raise ServerFault(f"a reply length of {length} bytes (over 16 MiB)")
                if len(self.buffer) >= HEADER + length:
                    payload = bytes(self.buffer[HEADER:HEADER + length])
                    del self.buffer[:HEADER + length]
                    return payload
            self.receive_more()


def show(payload: bytes) -> bytes:
    """A reply as printed: opcode in hex, a space and the body in hex (if any)."""
    if not payload:
        raise ServerFault("an empty reply (no opcode)")
    return (payload[:1].hex() + (" " + payload[1:].hex() if len(payload) > 1 else "")).encode()


def run(sock: socket.socket, requests: list[bytes], out) -> None:
    reader = FrameReader(sock)
    for request in requests:
        try:
            sock.sendall(len(request).to_bytes(HEADER, "big") + request)
        except OSError as exc:
            raise ServerFault(f"cannot send request {request[:1].hex()}: "
                              f"{exc.strerror or exc}") from None
        out.write(show(reader.frame()) + b"\n")
        out.flush()
    sock.shutdown(socket.SHUT_WR)  # our FIN: the server answers what it has, then closes
    textbook_client.expect_close(sock, reader.buffer)


def main(argv: list[str] | None = None) -> int:
    return textbook_client.main(argv, __doc__.splitlines()[0], parse, run)


if __name__ == "__main__":
    sys.exit(main())
