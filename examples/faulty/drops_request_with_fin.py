"""Faulty server (any example protocol): a request that arrives together with the client's
FIN is dropped.

After reading a request it peeks at what comes next (MSG_PEEK | MSG_DONTWAIT);
when that is already the end of the stream it takes the request for an
abandoned one and ends the connection without answering it. An interactive
client (request, reply, then FIN) never meets it.

Fails the generic family **half-close** (a request sent with the FIN gets no reply);
every other generic family passes. Proven by tests/test_proto_families.py over tcp,
tcp6, unix.

    python3 drops_request_with_fin.py --protocol kv|frames -h HOST -p PORT      (or -u PATH)
"""

import socket
import sys

from variant import TextbookServer, run

FAMILY = "half-close"
ALSO_FAILS = ()
TRANSPORTS = ("tcp", "tcp6", "unix")


class DropsRequestWithFin(TextbookServer):
    def read_message(self, conn, buffer):
        message = super().read_message(conn, buffer)
        if message is not None and not buffer and fin_is_next(conn):
            return None  # the defect: the request that came with the FIN is never answered
        return message


def fin_is_next(conn):
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False


if __name__ == "__main__":
    sys.exit(run(DropsRequestWithFin))
