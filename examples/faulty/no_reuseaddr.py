"""Faulty server (any example protocol): the listening socket is bound without SO_REUSEADDR.

Started on a fresh port it works; after kill -9 with clients connected, their
connections keep the port (FIN_WAIT2, or TIME_WAIT for 60 s) and the
restarted server's bind() fails with EADDRINUSE.

Fails the generic family **restart** (it cannot start again on its port after kill -9);
every other generic family passes. Proven by tests/test_proto_families.py over tcp,
tcp6.

    python3 no_reuseaddr.py --protocol kv|frames -h HOST -p PORT      (or -u PATH)
"""

import socket
import sys

from variant import TextbookServer, ip_family, run

FAMILY = "restart"
ALSO_FAILS = ()
TRANSPORTS = ("tcp", "tcp6")


class NoReuseAddr(TextbookServer):
    def listen(self):
        if isinstance(self.address, str):
            return super().listen()
        sock = socket.socket(ip_family(self.address[0]), socket.SOCK_STREAM)
        # the defect: no sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(self.address)
            sock.listen(self.backlog)
        except OSError:
            sock.close()
            raise
        self.listener = sock


if __name__ == "__main__":
    sys.exit(run(NoReuseAddr))
