"""Faulty kv client: copies the Unix socket path into a 104-byte sun_path, as on BSD.

A path of 104 bytes or more loses its tail (103 bytes and a NUL are kept), so the
client connects to a file that does not exist. Fails the client family
**client-unix-max-path** (a 107-byte path); every other client family passes (their
paths are short). Proven by tests/test_proto_clients.py over unix.

    python3 short_sun_path.py unix:PATH --file IN [--timeout S]     like ../client.py
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import client  # noqa: E402
import textbook_client  # noqa: E402 (on sys.path once client is imported)

FAMILY = "client-unix-max-path"
ALSO_FAILS = ()
TRANSPORTS = ("unix",)
BSD_SUN_PATH_BYTES = 104

connect_full_path = textbook_client.connect


def connect_bsd_sized_path(where, timeout):
    if where.startswith("unix:"):
        path = os.fsencode(where[len("unix:"):])[:BSD_SUN_PATH_BYTES - 1]  # the defect
        where = "unix:" + os.fsdecode(path)
    return connect_full_path(where, timeout)


if __name__ == "__main__":
    textbook_client.connect = connect_bsd_sized_path
    sys.exit(client.main())
