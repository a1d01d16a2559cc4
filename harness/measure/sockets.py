"""Socket details shared by the load loops: timeouts, errno names, destinations, pinning.

The loops use blocking sockets bounded by SO_RCVTIMEO / SO_SNDTIMEO rather
than ``settimeout()``: CPython implements a timeout by poll()ing before every
send and recv, one extra system call per operation, which shows in a 12 µs
round trip. With the kernel timeouts a blocked recv() fails with EAGAIN, and a
blocking connect() honours SO_SNDTIMEO and fails with EINPROGRESS.
"""

from __future__ import annotations

import errno
import os
import resource
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager

from sockspec.errors import AddressError
from sockspec.iproute import in_private_network_namespace
from sockspec.transport import Address, TcpAddress, parse_address, set_io_timeouts

__all__ = ["set_io_timeouts"]  # re-exported for the load loops

# <linux/in.h>: bind() reserves no port; connect() picks it per 4-tuple.
# Python's socket module may lack the constant.
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
RST_LINGER = struct.pack("ii", 1, 0)  # SO_LINGER {on, 0}: close() sends RST, no TIME_WAIT


def failure_name(exc: BaseException) -> str:
    """A short, countable name for a failed socket operation: the errno name or 'timeout'."""
    if isinstance(exc, TimeoutError | BlockingIOError):
        return "timeout"  # SO_RCVTIMEO/SO_SNDTIMEO expiry is EAGAIN; connect's is EINPROGRESS
    if isinstance(exc, OSError) and exc.errno:
        if exc.errno in (errno.EAGAIN, errno.EINPROGRESS, errno.ETIMEDOUT):
            return "timeout"
        return errno.errorcode.get(exc.errno, f"errno {exc.errno}")
    return type(exc).__name__


def errno_failure(code: int) -> str:
    if code in (errno.EAGAIN, errno.EINPROGRESS, errno.ETIMEDOUT):
        return "timeout"
    return errno.errorcode.get(code, f"errno {code}")


def resolve_destination(address: str | Address) -> Address:
    """Parse and vet a load destination: loopback or Unix, or any address when this
    process runs inside a private network namespace (the namespace lab), where
    the only reachable addresses are the ones the lab created.
    """
    target = parse_address(address) if isinstance(address, str) else address
    if target.is_loopback() or in_private_network_namespace():
        return target
    raise AddressError(f"{target} is not a loopback address; load goes only to 127.0.0.0/8, "
                       "::1, Unix sockets, or addresses inside a namespace lab")


def open_stream(address: Address) -> socket.socket:
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    if isinstance(address, TcpAddress):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


@contextmanager
def pinned(cpus: tuple[int, ...] | None) -> Iterator[None]:
    """Run the calling thread on ``cpus`` (sched_setaffinity) and restore its mask after."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(cpus))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def ensure_fd_room(sockets: int, reserve: int = 64) -> None:
    """Raise the soft RLIMIT_NOFILE (up to the hard limit) so ``sockets`` more fit.

    Many systems start processes with a soft limit of 1024 and a much higher hard
    limit; the plan counts on the hard one (20000 here, where soft = hard).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = len(os.listdir("/proc/self/fd")) + sockets + reserve
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
