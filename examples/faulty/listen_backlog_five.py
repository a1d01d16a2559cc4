"""Faulty server (any example protocol): listen(5), the textbook backlog: the kernel queues
6 connections at most.

While its accept loop is busy (here: stopped), a seventh client's SYN is
dropped and that client waits for the SYN retry after 1 s.

Fails the generic family **backlog** (of 16 connects made while it is stopped, only 6
complete); every other generic family passes except concurrent-connections (the same
defect truly breaks them). Proven by tests/test_proto_families.py over tcp, tcp6.

    python3 listen_backlog_five.py --protocol kv|frames -h HOST -p PORT      (or -u PATH)
"""

import sys

from variant import TextbookServer, run

FAMILY = "backlog"
ALSO_FAILS = ("concurrent-connections",)
TRANSPORTS = ("tcp", "tcp6")


class BacklogFive(TextbookServer):
    def listen(self):
        self.backlog = 5  # the defect: a tiny accept queue, whatever --backlog says
        super().listen()


if __name__ == "__main__":
    sys.exit(run(BacklogFive))
