"""Faulty server (any example protocol): os._exit(3) at the 1000th connection (a fixed table
of 1000 client slots).

Fails the generic family **sustained-load** (its 1100 sequential connections cross 1000;
connection-rate opens thousands on the shared server within its second, so the 1000th
(counted from the start) falls there too); every other generic family passes except
connection-rate, as said. Proven over TCP by tests/test_proto_measure.py (TRANSPORTS: where it
shows).

    python3 crashes_after_1000.py --protocol kv|frames -h HOST -p PORT      (or -u PATH)
"""

import os
import sys

from variant import TextbookServer, run

FAMILY = "sustained-load"
ALSO_FAILS = ("connection-rate",)
TRANSPORTS = ("tcp", "unix")


class Crashes(TextbookServer):
    accepted = 0

    def accept(self):
        conn = super().accept()
        if conn is not None:
            self.accepted += 1
            if self.accepted >= 1000:
                os._exit(3)           # the defect: a table of 1000 clients, never freed
        return conn


if __name__ == "__main__":
    sys.exit(run(Crashes))
