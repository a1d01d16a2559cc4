"""Faulty kv server: SIGPIPE is left at its default action, which kills the process.

Python ignores SIGPIPE; a C program does not, and neither does this variant:
a send() to a client that reset after its FIN fails with EPIPE and raises
SIGPIPE, and the whole server dies with it.

Fails the generic family **client-abort** (a client that leaves while a reply is owed
kills it); every other generic family passes. Proven by tests/test_proto_families.py
over tcp, tcp6, unix.

    python3 sigpipe_default.py -h HOST -p PORT      (or -u PATH), like ../server.py
"""

import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server import KVServer, main  # noqa: E402

FAMILY = "client-abort"
ALSO_FAILS = ()
TRANSPORTS = ("tcp", "tcp6", "unix")


class SigpipeDefault(KVServer):
    def serve_forever(self):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # the defect: as a C program starts
        super().serve_forever()


if __name__ == "__main__":
    sys.exit(main(server_class=SigpipeDefault))
