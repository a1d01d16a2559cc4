"""Faulty server (any example protocol): a connection that ends in an error (a reset) is
never closed.

It keeps every connection in a list, to close them all at shutdown, and closes
and forgets one when it ends normally; a connection whose client reset it
takes the error path, which returns without either: one descriptor leaked
per reset client. A Unix stream has no reset (the client's close is an EOF
there), so only TCP shows it.

Fails the generic family **fd-leak** (100 connections, half of them reset, leave 50
descriptors open); every other generic family passes. Proven by
tests/test_proto_families.py over tcp, tcp6.

    python3 leaks_reset_connections.py --protocol kv|frames -h HOST -p PORT      (or -u PATH)
"""

import sys

from variant import IDLE_TIMEOUT, TextbookServer, run, set_io_timeouts

FAMILY = "fd-leak"
ALSO_FAILS = ()
TRANSPORTS = ("tcp", "tcp6")


class LeaksResets(TextbookServer):
    connections = []

    def handle(self, conn):
        self.connections.append(conn)
        try:
            set_io_timeouts(conn, IDLE_TIMEOUT)
            self.serve(conn)
        except OSError:
            return  # the defect: neither closed nor forgotten
        conn.close()
        self.connections.remove(conn)


if __name__ == "__main__":
    sys.exit(run(LeaksResets))
