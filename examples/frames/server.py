"""frames: a length-prefixed binary RPC server.

    python3 server.py -h HOST -p PORT [--backlog N]     # TCP (127.0.0.1, ::1, ...)
    python3 server.py -u PATH [--backlog N]             # Unix stream socket

Every message is a 4-byte big-endian length (not counting itself), then that
many bytes of payload: one opcode byte and its body. A reply's opcode is the
request's with the high bit set::

    01 ECHO  body                      -> 81 body (byte for byte)
    02 SUM   N big-endian u32          -> 82 their sum, a big-endian u64
    03 INFO  (empty body)              -> 83 "frames/1"
    other opcodes, or an empty payload -> ff "unknown opcode"

A SUM body that is not a whole number of u32 is ``ff "bad SUM body"``; INFO
ignores a body. A length over 16 MiB ends the connection.

The program is the textbook blocking server (examples/common/textbook_server.py:
socket, SO_REUSEADDR, bind, listen, an accept loop that starts one thread per
connection, the command line); this file adds the frames protocol: how a
message is read, how a reply is framed, and the operations. Each step is a
small method of ``FramesServer`` so that a variant can subclass it and change
one thing (examples/faulty/ and examples/frames/faulty/ do exactly that, to
plant one defect per variant).
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

# The shared textbook server lives in examples/common/ (this file runs as a script).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "common"))

import textbook_server  # noqa: E402
from textbook_server import RECV_SIZE, HangUp, TextbookServer  # noqa: E402

HEADER = 4                      # bytes of the length prefix
MAX_PAYLOAD = 16 * 1024 * 1024  # largest payload accepted

ECHO, SUM, INFO = 0x01, 0x02, 0x03
REPLY_BIT = 0x80
ERROR = 0xFF
VERSION = b"frames/1"


class BadRequest(Exception):
    """A request the server understands but cannot carry out: an error reply."""


class FramesServer(TextbookServer):
    """The frames server: one listening socket, one thread per connection."""

    def __init__(self, address: tuple[str, int] | str, backlog: int = 128) -> None:
        super().__init__(address, backlog)
        self.operations = {ECHO: self.do_echo, SUM: self.do_sum, INFO: self.do_info}

    # -- framing: a 4-byte length prefix -------------------------------------------------

    def read_message(self, conn: socket.socket, buffer: bytearray) -> bytes | None:
        """The next request's payload, or None at the client's FIN.

        TCP is a byte stream: one recv() may hold part of a message or several
        messages. ``buffer`` keeps what arrived past the message returned, for
        the next call; a message that is still incomplete at the FIN is dropped.
        """
        while True:
            if len(buffer) >= HEADER:
                length = int.from_bytes(buffer[:HEADER], "big")
                if length > MAX_PAYLOAD:
                    raise HangUp()  # no reply: the stream cannot be trusted any more
                if len(buffer) >= HEADER + length:
                    payload = bytes(buffer[HEADER:HEADER + length])
                    del buffer[:HEADER + length]
                    return payload
            chunk = conn.recv(RECV_SIZE)
            if not chunk:
                return None
            buffer += chunk

    def framed(self, payload: bytes) -> list[bytes]:
        """A reply message: the length prefix, then the payload."""
        return [len(payload).to_bytes(HEADER, "big"), payload]

    # -- the operations ----------------------------------------------------------------

    def execute(self, payload: bytes) -> bytes:
        """The reply payload to one request payload."""
        operation = self.operations.get(payload[0]) if payload else None
        if operation is None:
            return bytes([ERROR]) + b"unknown opcode"
        try:
            return bytes([payload[0] | REPLY_BIT]) + operation(payload[1:])
        except BadRequest as exc:
            return bytes([ERROR]) + str(exc).encode()

    def do_echo(self, body: bytes) -> bytes:
        return body

    def do_sum(self, body: bytes) -> bytes:
        if len(body) % 4:
            raise BadRequest("bad SUM body")
        numbers = (int.from_bytes(body[i:i + 4], "big") for i in range(0, len(body), 4))
        # At most 4 Mi numbers below 2**32 each: the sum always fits in 64 bits.
        return sum(numbers).to_bytes(8, "big")

    def do_info(self, body: bytes) -> bytes:
        return VERSION


def main(argv: list[str] | None = None, server_class: type[FramesServer] = FramesServer) -> int:
    return textbook_server.main(argv, server_class, __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
