"""Faulty server (any example protocol): after the client's FIN it closes with SO_LINGER {1,
0}: RST, not FIN.

A common trick to avoid TIME_WAIT: instead of shutdown(SHUT_WR) the
connection is closed abortively, so the kernel sends RST and drops what its
send queue still holds: a client still reading loses the end of its reply.
Unix sockets ignore SO_LINGER, so only TCP shows it.

Fails the generic family **graceful-close** (the stream ends with RST after the client's
FIN); every other generic family passes. Proven by tests/test_proto_families.py over
tcp, tcp6.

    python3 linger_zero_close.py --protocol kv|frames -h HOST -p PORT      (or -u PATH)
"""

import socket
import struct
import sys

from variant import TextbookServer, run

FAMILY = "graceful-close"
ALSO_FAILS = ()
TRANSPORTS = ("tcp", "tcp6")


class LingerZero(TextbookServer):
    def finish(self, conn):
        # the defect: no shutdown(SHUT_WR); the close() that follows sends RST
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


if __name__ == "__main__":
    sys.exit(run(LingerZero))
