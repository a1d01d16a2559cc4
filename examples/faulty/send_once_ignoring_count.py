"""Faulty server (any example protocol): each reply is one non-blocking send(), its count
ignored.

As an event-loop server that writes a reply with one send() on a non-blocking
socket and forgets the rest: when the client reads slowly and the send buffer
is full, send() takes part of the reply (or nothing: EAGAIN) and the remainder
is silently dropped.

Fails the generic family **partial-writes** (its large reply, read in bursts, arrives
cut short); every other generic family passes except throughput (the same defect truly
breaks them). Proven by tests/test_proto_families.py over tcp, tcp6, unix.

    python3 send_once_ignoring_count.py --protocol kv|frames -h HOST -p PORT      (or -u PATH)
"""

import sys

from variant import TextbookServer, run

FAMILY = "partial-writes"
ALSO_FAILS = ("throughput",)
TRANSPORTS = ("tcp", "tcp6", "unix")


class SendOnce(TextbookServer):
    def reply(self, conn, payload):
        conn.setblocking(False)
        try:
            conn.send(b"".join(self.framed(payload)))  # the defect: its count ignored
        except BlockingIOError:
            pass  # ... and "nothing sent" too
        finally:
            conn.setblocking(True)


if __name__ == "__main__":
    sys.exit(run(SendOnce))
