"""Faulty frames server: each connection is served inline in the accept loop.

The iterative server of the textbooks: accept(), serve that client until it
leaves, then accept() the next. Every other client waits in the accept queue.

Fails the generic family **concurrency** (of 20 clients connected at once only the first
is answered); every other generic family passes except concurrent-connections and
slow-client-isolation (the same defect truly breaks them). Proven by
tests/test_proto_families.py over tcp, tcp6, unix.

    python3 one_client_at_a_time.py -h HOST -p PORT      (or -u PATH), like ../server.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server import FramesServer, main  # noqa: E402

FAMILY = "concurrency"
ALSO_FAILS = ("concurrent-connections", "slow-client-isolation")
TRANSPORTS = ("tcp", "tcp6", "unix")


class OneAtATime(FramesServer):
    def spawn(self, conn):
        self.handle(conn)  # the defect: no thread; the accept loop waits for this client


if __name__ == "__main__":
    sys.exit(main(server_class=OneAtATime))
