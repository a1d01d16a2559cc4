"""Faulty frames server: listen(5), the textbook backlog: the kernel queues 6 connections at most.

While its accept loop is busy (here: stopped), a seventh client's SYN is
dropped and that client waits for the SYN retry after 1 s.

Fails the generic family **backlog** (of 16 connects made while it is stopped, only 6
complete); every other generic family passes except concurrent-connections (the same
defect truly breaks them). Proven by tests/test_proto_families.py over tcp, tcp6.

    python3 listen_backlog_five.py -h HOST -p PORT      (or -u PATH), like ../server.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server import FramesServer, main  # noqa: E402

FAMILY = "backlog"
ALSO_FAILS = ("concurrent-connections",)
TRANSPORTS = ("tcp", "tcp6")


class BacklogFive(FramesServer):
    def listen(self):
        self.backlog = 5  # the defect: a tiny accept queue, whatever --backlog says
        super().listen()


if __name__ == "__main__":
    sys.exit(main(server_class=BacklogFive))
