"""Faulty kv server: a fixed pool of 256 worker threads: client 257 waits until one leaves.

Fails the generic family **concurrent-connections** (of 500 connections held at once,
the first 256 are answered and the rest wait in the pool's queue, unanswered); every
other generic family passes. Proven over TCP by tests/test_proto_measure.py (TRANSPORTS: where it
shows).

    python3 fixed_worker_pool.py -h HOST -p PORT      (or -u PATH), like ../server.py
"""

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server import KVServer, main  # noqa: E402

FAMILY = "concurrent-connections"
ALSO_FAILS = ()
TRANSPORTS = ("tcp", "unix")


class Pooled(KVServer):
    pool = ThreadPoolExecutor(256)

    def spawn(self, conn):
        self.pool.submit(self.handle, conn)   # the defect: at most 256 served at once


if __name__ == "__main__":
    sys.exit(main(server_class=Pooled))
