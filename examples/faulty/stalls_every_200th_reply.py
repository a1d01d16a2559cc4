"""Faulty server (any example protocol): every 200th reply of a connection waits 300 ms (a
periodic flush on the reply path).

Fails the generic family **latency-distribution** (of the 2200 replies of its ping-pong,
11 wait 300 ms, so p99.9 is over 250 ms; the latency family's 23 round trips never reach
the 200th); every other generic family passes. Proven by tests/test_proto_measure.py
over tcp, unix.

    python3 stalls_every_200th_reply.py --protocol kv|frames -h HOST -p PORT      (or -u PATH)
"""

import sys
import threading
import time

from variant import TextbookServer, run

FAMILY = "latency-distribution"
ALSO_FAILS = ()
TRANSPORTS = ("tcp", "unix")


class Stalls(TextbookServer):
    count = threading.local()     # a thread per connection: a count per connection

    def reply(self, conn, payload):
        self.count.n = getattr(self.count, "n", 0) + 1
        if self.count.n % 200 == 0:
            time.sleep(0.3)           # the defect: blocking work between recv() and send()
        super().reply(conn, payload)


if __name__ == "__main__":
    sys.exit(run(Stalls))
