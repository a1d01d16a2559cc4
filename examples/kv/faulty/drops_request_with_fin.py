"""Faulty kv server: a command that arrives together with the client's FIN is dropped.

After reading a command it peeks at what comes next (MSG_PEEK | MSG_DONTWAIT);
when that is already the end of the stream it takes the command for an
abandoned one and ends the connection without answering it. An interactive
client (request, reply, then FIN) never meets it.

Fails the generic family **half-close** (a command sent with the FIN gets no reply);
every other generic family passes. Proven by tests/test_proto_families.py over tcp,
tcp6, unix.

    python3 drops_request_with_fin.py -h HOST -p PORT      (or -u PATH), like ../server.py
"""

import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server import KVServer, main  # noqa: E402

FAMILY = "half-close"
ALSO_FAILS = ()
TRANSPORTS = ("tcp", "tcp6", "unix")


class DropsRequestWithFin(KVServer):
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
    sys.exit(main(server_class=DropsRequestWithFin))
