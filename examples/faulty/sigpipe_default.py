"""Faulty server (any example protocol): SIGPIPE is left at its default action, which kills
the process.

Python ignores SIGPIPE; a C program does not, and neither does this variant:
a send() to a client that reset after its FIN fails with EPIPE and raises
SIGPIPE, and the whole server dies with it.

Fails the generic family **client-abort** (a client that leaves while a reply is owed
kills it); every other generic family passes. Proven by tests/test_proto_families.py
over tcp, tcp6, unix.

    python3 sigpipe_default.py --protocol kv|frames -h HOST -p PORT      (or -u PATH)
"""

import signal
import sys

from variant import TextbookServer, run

FAMILY = "client-abort"
ALSO_FAILS = ()
TRANSPORTS = ("tcp", "tcp6", "unix")


class SigpipeDefault(TextbookServer):
    def serve_forever(self):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # the defect: as a C program starts
        super().serve_forever()


if __name__ == "__main__":
    sys.exit(run(SigpipeDefault))
