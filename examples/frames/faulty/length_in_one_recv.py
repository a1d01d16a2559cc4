"""Faulty frames server: the 4-byte length prefix is read with one recv(4), its short count ignored.

As a C server that calls recv(fd, &length, 4, 0) once: when the prefix arrives
in two pieces, the bytes that did not come yet count as zeros, the length is
wrong and the stream is out of step from there on.

Fails the generic family **partial-reads** (a request split inside its length prefix, or
sent one byte per segment); every other generic family passes. Proven by
tests/test_proto_families.py over tcp, tcp6, unix.

    python3 length_in_one_recv.py -h HOST -p PORT      (or -u PATH), like ../server.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server import HEADER, FramesServer, main  # noqa: E402

FAMILY = "partial-reads"
ALSO_FAILS = ()
TRANSPORTS = ("tcp", "tcp6", "unix")


class LengthInOneRecv(FramesServer):
    def read_message(self, conn, buffer):
        if not buffer:
            prefix = conn.recv(HEADER)  # the defect: one recv(), its short count ignored
            if not prefix:
                return None
            buffer += prefix.ljust(HEADER, b"\0")
        return super().read_message(conn, buffer)


if __name__ == "__main__":
    sys.exit(main(server_class=LengthInOneRecv))
