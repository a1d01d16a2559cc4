"""Faulty frames server: each reply written in two send() calls, the length prefix and then
the payload.

Fails the generic family **latency** (with Nagle on, the second small write waits for
the ACK of the first, which the client delays by ~40 ms: the median round trip is ~40
ms; a Unix socket has no Nagle, so it is proven over TCP); every other generic family
passes. Proven over TCP by tests/test_proto_measure.py (TRANSPORTS: where it
shows).

    python3 reply_in_two_writes.py -h HOST -p PORT      (or -u PATH), like ../server.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server import FramesServer, main  # noqa: E402

FAMILY = "latency"
ALSO_FAILS = ()
TRANSPORTS = ("tcp", "tcp6")


class TwoWrites(FramesServer):
    def reply(self, conn, payload):
        conn.sendall(len(payload).to_bytes(4, "big"))   # the defect: two small writes
        conn.sendall(payload)


if __name__ == "__main__":
    sys.exit(main(server_class=TwoWrites))
