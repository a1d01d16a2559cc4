"""Faulty server (any example protocol): each reply written in two send() calls: its framing
apart from its payload (kv: the line, then its CRLF; frames: the length prefix, then the
payload).

Fails the generic family **latency** (with Nagle on, the second small write waits for
the ACK of the first, which the client delays by ~40 ms: the median round trip is ~40
ms; a Unix socket has no Nagle, so it is proven over TCP); every other generic family
passes. Proven over TCP by tests/test_proto_measure.py (TRANSPORTS: where it
shows).

    python3 reply_in_two_writes.py --protocol kv|frames -h HOST -p PORT      (or -u PATH)
"""

import sys

from variant import TextbookServer, run

FAMILY = "latency"
ALSO_FAILS = ()
TRANSPORTS = ("tcp", "tcp6")


class TwoWrites(TextbookServer):
    def reply(self, conn, payload):
        for piece in self.framed(payload):
            conn.sendall(piece)       # the defect: two small writes per reply


if __name__ == "__main__":
    sys.exit(run(TwoWrites))
