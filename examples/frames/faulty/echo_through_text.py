"""Faulty frames server: ECHO passes its body through UTF-8 text: bytes over 0x7f are mangled.

The body is decoded as UTF-8 (invalid sequences replaced) and encoded again, as
a server that treats messages as text would: ASCII survives, every byte that
is not valid UTF-8 comes back as U+FFFD (EF BF BD).

Fails the generic family **binary-integrity** (an ECHO of every byte value does not come
back identical); every other generic family passes except throughput (the same defect
truly breaks them). Proven by tests/test_proto_families.py over tcp, tcp6, unix.

    python3 echo_through_text.py -h HOST -p PORT      (or -u PATH), like ../server.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server import FramesServer, main  # noqa: E402

FAMILY = "binary-integrity"
ALSO_FAILS = ("throughput",)
TRANSPORTS = ("tcp", "tcp6", "unix")


class EchoThroughText(FramesServer):
    def do_echo(self, body):
        return body.decode("utf-8", "replace").encode("utf-8")  # the defect: bytes as text


if __name__ == "__main__":
    sys.exit(main(server_class=EchoThroughText))
