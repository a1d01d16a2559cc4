"""Faulty kv server: the command word is taken from the first recv() of a command.

When a command's first recv() ends inside its first word (no space, no CRLF
yet), that piece is served as a whole command line, as if one recv() were one
message: `PI` then `NG` are two unknown commands, never a PING.

Fails the generic family **partial-reads** (a request in pieces, one byte per segment,
or split inside its command word); every other generic family passes. Proven by
tests/test_proto_families.py over tcp, tcp6, unix.

    python3 verb_from_first_recv.py -h HOST -p PORT      (or -u PATH), like ../server.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server import RECV_SIZE, KVServer, main  # noqa: E402

FAMILY = "partial-reads"
ALSO_FAILS = ()
TRANSPORTS = ("tcp", "tcp6", "unix")


class VerbFromFirstRecv(KVServer):
    def read_message(self, conn, buffer):
        if not buffer:
            chunk = conn.recv(RECV_SIZE)
            if not chunk:
                return None
            if b" " not in chunk and b"\r\n" not in chunk:
                return chunk  # the defect: a piece ending inside the word taken as a command
            buffer += chunk
        return super().read_message(conn, buffer)


if __name__ == "__main__":
    sys.exit(main(server_class=VerbFromFirstRecv))
