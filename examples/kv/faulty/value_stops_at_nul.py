"""Faulty kv server: a value is stored as a C string: it ends at its first NUL byte.

SET stores the value up to its first NUL, as strcpy() would; GET then returns
the truncated value. Text values never meet it.

Fails the generic family **binary-integrity** (a value holding every byte value but
whitespace comes back cut at its NUL); every other generic family passes. Proven by
tests/test_proto_families.py over tcp, tcp6, unix.

    python3 value_stops_at_nul.py -h HOST -p PORT      (or -u PATH), like ../server.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server import KVServer, main  # noqa: E402

FAMILY = "binary-integrity"
ALSO_FAILS = ()
TRANSPORTS = ("tcp", "tcp6", "unix")


class StopsAtNul(KVServer):
    def do_set(self, key, value):
        return super().do_set(key, value.split(b"\0", 1)[0])  # the defect: a C string


if __name__ == "__main__":
    sys.exit(main(server_class=StopsAtNul))
