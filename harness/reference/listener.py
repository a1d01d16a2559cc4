"""Listening sockets for the reference server, and the Unix socket path policy.

TCP: socket, SO_REUSEADDR, (IPV6_V6ONLY for ::1), bind, listen.
Unix: a path that does not fit in sun_path is refused; a stale socket file
(nobody accepts on it: connect() gives ECONNREFUSED) is replaced; any other
file at the path, or a socket a live server accepts on, is left alone and
refused. The socket file is removed on close only if the path still names the
inode this listener created, so a server never deletes a successor's socket.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from dataclasses import dataclass

from sockspec.errors import ServerStartError
from sockspec.transport import (
    Address,
    TcpAddress,
    UnixAddress,
    check_unix_path,
    describe_os_error,
)

# How long to wait for a probe connect() to a socket file found at our path.
# A live listener answers at once; a full accept queue fails with EAGAIN at
# once for Unix sockets, so this only bounds an unexpected stall.
_PROBE_TIMEOUT_SECONDS = 1.0


@dataclass
class Listener:
    sock: socket.socket
    address: Address  # as bound: a TCP port 0 is replaced by the port the kernel chose
    unix_identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the socket file we created

    def close(self) -> None:
        """Close the socket and remove our Unix socket file (only if it is still ours)."""
        self.sock.close()
        if isinstance(self.address, UnixAddress) and self.unix_identity is not None:
            _unlink_if_identity(self.address.path, self.unix_identity)
            self.unix_identity = None


def open_listener(address: Address, backlog: int) -> Listener:
    """Bind and listen; raise ServerStartError (exit 1) or AddressError (exit 2).

    ``backlog`` is passed to listen(); the kernel silently caps it at
    net.core.somaxconn (4096 by default since Linux 5.4).
    """
    if isinstance(address, UnixAddress):
        return _open_unix_listener(address, backlog)
    return _open_tcp_listener(address, backlog)


def _open_tcp_listener(address: TcpAddress, backlog: int) -> Listener:
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    try:
        # Without SO_REUSEADDR, bind() fails with EADDRINUSE while connections
        # of a previous server on this port still exist (FIN_WAIT2, TIME_WAIT
        # for 60 s = TCP_TIMEWAIT_LEN), e.g. right after a kill -9.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if address.family == socket.AF_INET6:
            # Serve ::1 only, never IPv4-mapped addresses, whatever
            # net.ipv6.bindv6only says.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address.sockaddr)
        sock.listen(backlog)
        bound = TcpAddress(address.host, sock.getsockname()[1])
    except OSError as exc:
        sock.close()
        raise ServerStartError(
            f"cannot listen on {address.hostport}: {describe_os_error(exc)}"
        ) from exc
    return Listener(sock, bound)


def _open_unix_listener(address: UnixAddress, backlog: int) -> Listener:
    check_unix_path(address.path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    identity = None
    try:
        try:
            sock.bind(address.path)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            # bind() never replaces an existing file: decide whether it is ours to remove.
            _remove_stale_socket_file(address)
            sock.bind(address.path)
        info = os.lstat(address.path)
        identity = (info.st_dev, info.st_ino)
        sock.listen(backlog)
    except BaseException as exc:
        sock.close()
        if identity is not None:
            _unlink_if_identity(address.path, identity)
        if isinstance(exc, OSError):
            raise ServerStartError(
                f"cannot listen on {address}: {describe_os_error(exc)}"
            ) from exc
        raise
    return Listener(sock, address, identity)


def _remove_stale_socket_file(address: UnixAddress) -> None:
    """Unlink the socket file at ``address`` if nobody accepts on it; refuse otherwise."""
    path = address.path
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return  # removed meanwhile: the retried bind() will tell
    if not stat.S_ISSOCK(info.st_mode):
        raise ServerStartError(
            f"cannot listen on {address}: a {_file_kind(info.st_mode)} is in the way "
            "(not a socket; left alone)"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(_PROBE_TIMEOUT_SECONDS)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        pass  # stale: the socket file outlived its server
    except FileNotFoundError:
        return
    except (BlockingIOError, TimeoutError):
        # EAGAIN: a live listener whose accept queue is full.
        raise ServerStartError(
            f"cannot listen on {address}: a live server is listening there (accept queue full)"
        ) from None
    except OSError as exc:
        raise ServerStartError(
            f"cannot listen on {address}: cannot probe the existing socket file: "
            f"{describe_os_error(exc)}"
        ) from exc
    else:
        raise ServerStartError(f"cannot listen on {address}: a live server is listening there")
    finally:
        probe.close()
    _unlink_if_identity(path, (info.st_dev, info.st_ino))


def _unlink_if_identity(path: str, identity: tuple[int, int]) -> None:
    try:
        info = os.lstat(path)
        if (info.st_dev, info.st_ino) == identity:
            os.unlink(path)
    except FileNotFoundError:
        pass


def _file_kind(mode: int) -> str:
    kinds = [
        (stat.S_ISREG, "regular file"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISLNK, "symbolic link"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ]
    return next((name for test, name in kinds if test(mode)), "file")
