"""Faulty server (any example protocol): every reply is sent under one lock shared by all
connections.

Fails the generic family **slow-client-isolation** (a client that stops reading leaves
its thread blocked in sendall() holding the lock, so every other client's reply waits
for it); every other generic family passes. Proven over TCP by tests/test_proto_measure.py (TRANSPORTS: where it
shows).

    python3 send_under_global_lock.py --protocol kv|frames -h HOST -p PORT      (or -u PATH)
"""

import sys
import threading

from variant import TextbookServer, run

FAMILY = "slow-client-isolation"
ALSO_FAILS = ()
TRANSPORTS = ("tcp", "unix")


class OneLock(TextbookServer):
    send_lock = threading.Lock()

    def reply(self, conn, payload):
        with self.send_lock:          # the defect: one slow reader blocks every sender
            super().reply(conn, payload)


if __name__ == "__main__":
    sys.exit(run(OneLock))
