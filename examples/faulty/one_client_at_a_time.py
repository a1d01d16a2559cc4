"""Faulty server (any example protocol): each connection is served inline in the accept
loop.

The iterative server of the textbooks: accept(), serve that client until it
leaves, then accept() the next. Every other client waits in the accept queue.

Fails the generic family **concurrency** (of 20 clients connected at once only the first
is answered); every other generic family passes except concurrent-connections and
slow-client-isolation (the same defect truly breaks them). Proven by
tests/test_proto_families.py over tcp, tcp6, unix.

    python3 one_client_at_a_time.py --protocol kv|frames -h HOST -p PORT      (or -u PATH)
"""

import sys

from variant import TextbookServer, run

FAMILY = "concurrency"
ALSO_FAILS = ("concurrent-connections", "slow-client-isolation")
TRANSPORTS = ("tcp", "tcp6", "unix")


class OneAtATime(TextbookServer):
    def spawn(self, conn):
        self.handle(conn)  # the defect: no thread; the accept loop waits for this client


if __name__ == "__main__":
    sys.exit(run(OneAtATime))
