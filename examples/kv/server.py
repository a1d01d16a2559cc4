"""kv: an inline text key-value server in the style of Redis's inline commands.

    python3 server.py -h HOST -p PORT [--backlog N]     # TCP (127.0.0.1, ::1, ...)
    python3 server.py -u PATH [--backlog N]             # Unix stream socket

One command per line, each line ended by CRLF; one reply line per command::

    PING              -> +PONG
    SET key value     -> +OK
    GET key           -> $value            or  -ERR no such key
    DEL key           -> :1  (deleted)     or  :0 (there was no such key)
    INCR key          -> :n  (a missing key counts from 0) or -ERR not an integer
    QUIT              -> +BYE, and the server closes the connection

Verbs are case-insensitive; keys and values are single words (no spaces, no CR
or LF). Anything else is ``-ERR unknown command``; a known verb with the wrong
number of words is ``-ERR wrong number of arguments``; a line over 8 MiB is
``-ERR line too long`` and the end of the connection.

The program is the textbook blocking server (examples/common/textbook_server.py:
socket, SO_REUSEADDR, bind, listen, an accept loop that starts one thread per
connection, the command line); this file adds the kv protocol: how a command
line is read, how a reply is framed, and the commands. All threads share one
dict under a lock. Each step is a small method of ``KVServer`` so that a variant
can subclass it and change one thing (examples/faulty/ and examples/kv/faulty/
do exactly that, to plant one defect per variant).
"""

from __future__ import annotations

import re
import socket
import sys
import threading
from pathlib import Path

# The shared textbook server lives in examples/common/ (this file runs as a script).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "common"))

import textbook_server  # noqa: E402
from textbook_server import RECV_SIZE, HangUp, TextbookServer  # noqa: E402

MAX_LINE = 8 * 1024 * 1024      # longest command line accepted, without its CRLF

INTEGER = re.compile(rb"-?[0-9]{1,19}")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class KVServer(TextbookServer):
    """The kv server: one listening socket, one thread per connection, one shared dict."""

    def __init__(self, address: tuple[str, int] | str, backlog: int = 128) -> None:
        super().__init__(address, backlog)
        self.store: dict[bytes, bytes] = {}
        self.lock = threading.Lock()
        self.commands = {
            b"PING": (self.do_ping, 0),
            b"SET": (self.do_set, 2),
            b"GET": (self.do_get, 1),
            b"DEL": (self.do_del, 1),
            b"INCR": (self.do_incr, 1),
            b"QUIT": (self.do_quit, 0),
        }

    # -- framing: CRLF lines -------------------------------------------------------------

    def read_message(self, conn: socket.socket, buffer: bytearray) -> bytes | None:
        """The next command line (without its CRLF), or None at the client's FIN.

        TCP is a byte stream: one recv() may hold half a line or several lines.
        ``buffer`` keeps what arrived past the line returned, for the next call;
        a line that is still incomplete at the FIN is not a command.
        """
        searched = 0
        while True:
            end = buffer.find(b"\r\n", searched)
            if end >= 0:
                if end > MAX_LINE:
                    raise HangUp(b"-ERR line too long")
                line = bytes(buffer[:end])
                del buffer[:end + 2]
                return line
            if len(buffer) > MAX_LINE + 1:
                raise HangUp(b"-ERR line too long")
            searched = max(0, len(buffer) - 1)  # a CR may end the buffer
            chunk = conn.recv(RECV_SIZE)
            if not chunk:
                return None
            buffer += chunk

    def framed(self, payload: bytes) -> list[bytes]:
        """A reply line: the payload, then CRLF."""
        return [payload, b"\r\n"]

    # -- the commands ------------------------------------------------------------------

    def execute(self, line: bytes) -> bytes:
        """The reply to one command line."""
        words = line.split()
        verb = words[0].upper() if words else b""
        if verb not in self.commands:
            return b"-ERR unknown command"
        command, arity = self.commands[verb]
        if len(words) - 1 != arity:
            return b"-ERR wrong number of arguments"
        return command(*words[1:])

    def do_ping(self) -> bytes:
        return b"+PONG"

    def do_set(self, key: bytes, value: bytes) -> bytes:
        with self.lock:
            self.store[key] = value
        return b"+OK"

    def do_get(self, key: bytes) -> bytes:
        with self.lock:
            value = self.store.get(key)
        return b"-ERR no such key" if value is None else b"$" + value

    def do_del(self, key: bytes) -> bytes:
        with self.lock:
            return b":1" if self.store.pop(key, None) is not None else b":0"

    def do_incr(self, key: bytes) -> bytes:
        with self.lock:  # read, add and write as one step: concurrent INCRs all count
            value = self.store.get(key, b"0")
            if not INTEGER.fullmatch(value) or not INT64_MIN <= int(value) <= INT64_MAX:
                return b"-ERR not an integer"
            if int(value) == INT64_MAX:
                return b"-ERR increment would overflow"
            self.store[key] = b"%d" % (int(value) + 1)
            return b":" + self.store[key]

    def do_quit(self) -> bytes:
        raise HangUp(b"+BYE")  # the reply, then the server ends the connection


def main(argv: list[str] | None = None, server_class: type[KVServer] = KVServer) -> int:
    return textbook_server.main(argv, server_class, __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
