"""Faulty server (any example protocol): 100 ms of blocking work per accept() in the accept
loop (a reverse name lookup).

Fails the generic family **connection-rate** (at most 10 connections a second are
accepted, under the 25/s floor; 500 connections held at once cannot all be set up within
8 s either, so concurrent-connections fails too); every other generic family passes
except concurrent-connections, as said. Proven over TCP by tests/test_proto_measure.py (TRANSPORTS: where it
shows).

    python3 slow_accept_loop.py --protocol kv|frames -h HOST -p PORT      (or -u PATH)
"""

import sys
import time

from variant import TextbookServer, run

FAMILY = "connection-rate"
ALSO_FAILS = ("concurrent-connections",)
TRANSPORTS = ("tcp", "unix")


class SlowAccept(TextbookServer):
    def accept(self):
        conn = super().accept()
        time.sleep(0.1)               # the defect: slow work before the next accept()
        return conn


if __name__ == "__main__":
    sys.exit(run(SlowAccept))
