"""Faulty server (any example protocol): a fixed pool of 256 worker threads: client 257
waits until one leaves.

Fails the generic family **concurrent-connections** (of 500 connections held at once,
the first 256 are answered and the rest wait in the pool's queue, unanswered); every
other generic family passes. Proven over TCP by tests/test_proto_measure.py (TRANSPORTS: where it
shows).

    python3 fixed_worker_pool.py --protocol kv|frames -h HOST -p PORT      (or -u PATH)
"""

import sys
from concurrent.futures import ThreadPoolExecutor

from variant import TextbookServer, run

FAMILY = "concurrent-connections"
ALSO_FAILS = ()
TRANSPORTS = ("tcp", "unix")


class Pooled(TextbookServer):
    pool = ThreadPoolExecutor(256)

    def spawn(self, conn):
        self.pool.submit(self.handle, conn)   # the defect: at most 256 served at once


if __name__ == "__main__":
    sys.exit(run(Pooled))
