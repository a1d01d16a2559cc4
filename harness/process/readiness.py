"""Is a server ready, and is the listener its own? Probes of addresses and /proc/net.

Readiness is the exact target address accepting a connection; which socket
listens there is read from /proc/net (per network namespace) so that process
control can tell a server's own listener from someone else's.
"""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Callable
from pathlib import Path

from sockspec.errors import ConnectError
from sockspec.transport import Address, TcpAddress, UnixAddress, connect

CONNECT_ATTEMPT_TIMEOUT = 1.0   # a full TCP backlog drops SYNs; do not hang on one attempt


def wait_until_accepting(address: Address, deadline: float, *,
                         proc_alive: Callable[[], bool] | None = None,
                         confirm: Callable[[], bool] | None = None) -> bool:
    """Poll until ``address`` itself accepts a connection (then close it).

    ``deadline`` is a time.monotonic() value. Returns False at the deadline, or as
    soon as ``proc_alive()`` says the server can no longer come up. ``confirm``
    is asked while the probe connection is still open (a server that closes its
    listener after its first client still has it then); False means keep polling.
    """
    delay = 0.005
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            with connect(address, min(remaining, CONNECT_ATTEMPT_TIMEOUT)):
                if confirm is None or confirm():
                    return True
        except ConnectError:
            pass
        if proc_alive is not None and not proc_alive():
            return False
        time.sleep(max(0.0, min(delay, deadline - time.monotonic())))
        delay = min(delay * 2, 0.2)
    return False


def tcp_port_listened(address: TcpAddress) -> bool:
    """True when a listening socket blocks binding ``address``.

    bind() with SO_REUSEADDR ignores TIME_WAIT sockets only if their owner also set
    SO_REUSEADDR, so EADDRINUSE alone is not proof: confirm a LISTEN entry (state 0A)
    on that port in /proc/net/tcp{,6}.
    """
    with socket.socket(address.family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address.sockaddr)
            return False
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                return False
    return bool(listening_socket_inodes(address, "/proc"))


# SO_ACCEPTCON in /proc/net/unix "Flags": the socket is listening.
UNIX_ACCEPTCON = 0x10000


def listening_socket_inodes(address: Address, proc_dir: str) -> set[str]:
    """Inodes of the sockets listening on ``address``, as /proc/net shows them.

    ``proc_dir`` is "/proc" for this network namespace or "/proc/PID" for the
    namespace of process PID (a server may run in a namespace of its own).
    """
    found: set[str] = set()
    if isinstance(address, UnixAddress):
        for line in _table_lines(f"{proc_dir}/net/unix"):
            fields = line.split()  # Num RefCount Protocol Flags Type St Inode Path
            if (len(fields) >= 8 and fields[7] == address.path
                    and int(fields[3], 16) & UNIX_ACCEPTCON):
                found.add(fields[6])
        return found
    for table in ("tcp", "tcp6"):
        for line in _table_lines(f"{proc_dir}/net/{table}"):
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == address.port:
                found.add(fields[9])
    return found


def _table_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()[1:]
    except OSError:
        return []
