"""Faulty server (any example protocol): stops answering after 32 MiB of replies on a
connection and closes it (a per-connection byte quota).

Fails the generic family **throughput** (its 64 MiB of large replies on one connection
are cut off at 32 MiB; the other families' transfers stay far below); every other
generic family passes. Proven over TCP by tests/test_proto_measure.py (TRANSPORTS: where it
shows).

    python3 truncates_after_32mib.py --protocol kv|frames -h HOST -p PORT      (or -u PATH)
"""

import sys
import threading

from variant import HangUp, TextbookServer, run

FAMILY = "throughput"
ALSO_FAILS = ()
TRANSPORTS = ("tcp", "unix")


class Quota(TextbookServer):
    sent = threading.local()      # a thread per connection: a count per connection

    def reply(self, conn, payload):
        self.sent.n = getattr(self.sent, "n", 0) + len(payload)
        if self.sent.n > 32 * 1024 * 1024:
            raise HangUp()            # the defect: a byte quota per connection
        super().reply(conn, payload)


if __name__ == "__main__":
    sys.exit(run(Quota))
