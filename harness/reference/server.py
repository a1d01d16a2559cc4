"""The reference blocking server: echo (RFC 862) or HTTP/1.0 GET file serving.

Contract followed by every server under test::

    python -m sockspec.reference.server --profile echo|http -p PORT [-h HOST] [-r ROOT] [--backlog N]
    python -m sockspec.reference.server --profile echo|http -u PATH [-r ROOT] [--backlog N]

It prints nothing unless something fails, is ready once the address accepts
connections, exits 2 on a usage error and 1 when it cannot listen (one line on
stderr each), and dies of SIGTERM/SIGINT after removing its Unix socket file.
``--idle-timeout SECONDS`` (default 30) bounds every wait on a client.

The textbook sequence: socket, SO_REUSEADDR, bind, listen, accept loop, one
daemon thread per connection with blocking I/O. Connection threads are not
capped: 1000 concurrent clients need 1000 threads and 1000-2000 descriptors,
well within the limits; when accept() runs out of descriptors (EMFILE) the
loop backs off instead of spinning. Modules: listener.py (listening socket,
Unix path policy), connection.py (serving one connection), this one (accept
loop, in-process ReferenceServer, CLI); protocol decisions live in
harness/protocol/.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import select
import signal
import socket
import sys
import threading
from collections.abc import Sequence

from sockspec.errors import SockspecError, UsageError
from sockspec.iproute import in_private_network_namespace
from sockspec.reference.connection import (
    DEFAULT_IDLE_TIMEOUT,
    PROFILES,
    ServeConfig,
    handle_connection,
    make_config,
)
from sockspec.reference.listener import Listener, open_listener
from sockspec.transport import (
    Address,
    TcpAddress,
    UnixAddress,
    check_unix_path,
    describe_os_error,
)

_ACCEPT_BACKOFF_SECONDS = 0.1


# ----------------------------------------------------------------- accepting


def accept_loop(listen_sock: socket.socket, config: ServeConfig, wakeup: socket.socket) -> None:
    """Accept and start a thread per connection until ``wakeup`` becomes readable.

    poll() on the listener and the wake-up socket, then a non-blocking accept:
    a stop request (signal handler, ReferenceServer.stop) never races a
    blocking accept(), and a connection reset before accept() cannot block us.
    """
    listen_sock.setblocking(False)
    poller = select.poll()
    poller.register(listen_sock.fileno(), select.POLLIN)
    poller.register(wakeup.fileno(), select.POLLIN)
    reported: set[str] = set()  # report each kind of resource exhaustion once
    while True:
        ready = {fd for fd, _ in poller.poll()}
        if wakeup.fileno() in ready:
            return
        try:
            conn, _ = listen_sock.accept()
        except (BlockingIOError, ConnectionAbortedError, InterruptedError):
            continue
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                raise
            _report_once(reported, f"accept failed: {os.strerror(exc.errno)}; backing off")
            if _readable(wakeup, _ACCEPT_BACKOFF_SECONDS):
                return
            continue
        thread = threading.Thread(
            target=handle_connection, args=(conn, config), daemon=True, name="connection"
        )
        try:
            thread.start()
        except RuntimeError:  # "can't start new thread": refuse this one, serve the rest
            conn.close()
            _report_once(reported, "cannot start a connection thread; closing the connection")


def _readable(sock: socket.socket, timeout: float) -> bool:
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(timeout * 1000))


def _report_once(reported: set[str], message: str) -> None:
    if message not in reported:
        reported.add(message)
        print(f"server: {message}", file=sys.stderr)


class ReferenceServer:
    """The reference server in-process, for tests and benchmarks.

    ``with ReferenceServer(TcpAddress("127.0.0.1", 0), "echo") as address: ...``
    """

    def __init__(
        self,
        address: Address,
        profile: str,
        root: str | None = None,
        *,
        backlog: int = socket.SOMAXCONN,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        self._requested = address
        self._backlog = backlog
        self._config = make_config(profile, root, idle_timeout)
        self._listener: Listener | None = None
        self._wakeup_pair: tuple[socket.socket, socket.socket] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Address:
        """Listen and start accepting in a thread; return the bound address."""
        self._listener = open_listener(self._requested, self._backlog)
        self._wakeup_pair = socket.socketpair()
        self._thread = threading.Thread(
            target=accept_loop,
            args=(self._listener.sock, self._config, self._wakeup_pair[0]),
            daemon=True,
            name="accept",
        )
        self._thread.start()
        return self._listener.address

    def stop(self) -> None:
        """Stop accepting and close the listener; open connections finish on their own."""
        if self._wakeup_pair is not None and self._thread is not None:
            self._wakeup_pair[1].send(b"\0")
            self._thread.join()
            for sock in self._wakeup_pair:
                sock.close()
            self._wakeup_pair = self._thread = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self) -> Address:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# ----------------------------------------------------------------------- CLI


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see --help)")


def _build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="python -m sockspec.reference.server",
        description="Reference blocking server (echo or HTTP/1.0 GET) for sockspec.",
        add_help=False,  # -h is HOST, as in the contract
    )
    parser.add_argument("--help", action="help", help="show this help and exit")
    parser.add_argument("--profile", required=True, choices=PROFILES)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("-p", "--port", type=int, help="TCP port (1-65535)")
    where.add_argument("-u", "--unix", metavar="PATH", help="Unix socket path (< 108 bytes)")
    parser.add_argument("-h", "--host", help="loopback IP to listen on (default 127.0.0.1)")
    parser.add_argument("-r", "--root", help="directory served by --profile http")
    parser.add_argument("--backlog", type=int, default=socket.SOMAXCONN, help="listen() backlog")
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=DEFAULT_IDLE_TIMEOUT,
        metavar="SECONDS",
        help="close a client that sends or reads nothing for this long (default 30)",
    )
    return parser


def parse_command_line(argv: Sequence[str]) -> tuple[Address, int, ServeConfig]:
    """Turn arguments into (address, backlog, config); raise UsageError/AddressError."""
    options = _build_parser().parse_args(argv)
    if options.backlog < 0:
        raise UsageError(f"--backlog must be 0 or more, not {options.backlog}")
    config = make_config(options.profile, options.root, options.idle_timeout)
    if options.unix is not None:
        if options.host is not None:
            raise UsageError("-h HOST applies to TCP (-p), not to -u PATH")
        if not options.unix:
            raise UsageError("empty Unix socket path")
        check_unix_path(options.unix)
        return UnixAddress(options.unix), options.backlog, config
    if not 0 < options.port < 65536:
        raise UsageError(f"port {options.port} is out of range 1-65535")
    host = "127.0.0.1" if options.host is None else options.host
    try:
        is_loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        raise UsageError(
            f"HOST must be an IP address such as 127.0.0.1 or ::1, not {host!r}"
        ) from None
    # Inside a network namespace made with `ip netns add` (the wire lab's), every
    # address belongs to that private namespace.
    if not is_loopback and not in_private_network_namespace():
        raise UsageError(f"HOST {host} is not a loopback address; sockspec serves loopback "
                         f"only (or any address inside a named network namespace)")
    return TcpAddress(host, options.port), options.backlog, config


def main(argv: Sequence[str] | None = None) -> int:
    try:
        address, backlog, config = parse_command_line(sys.argv[1:] if argv is None else argv)
    except SockspecError as exc:
        print(f"server: {exc}", file=sys.stderr)
        return exc.exit_status
    # Python already ignores SIGPIPE at start-up; say so explicitly because a
    # write to a reset peer must be an EPIPE exception, never a process death.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    wakeup_read, wakeup_write = socket.socketpair()
    wakeup_write.setblocking(False)
    # The kernel may deliver a signal to any thread; CPython then runs the
    # Python handler in the main thread only at its next bytecode, which never
    # comes while the main thread sleeps in poll(). The wake-up fd is written
    # by CPython's C handler in whichever thread caught the signal.
    signal.set_wakeup_fd(wakeup_write.fileno())
    received: list[int] = []

    def on_stop_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        try:
            wakeup_write.send(b"\0")
        except OSError:
            pass

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_stop_signal)
    try:
        listener = open_listener(address, backlog)
    except SockspecError as exc:
        print(f"server: {exc}", file=sys.stderr)
        return exc.exit_status
    try:
        accept_loop(listener.sock, config, wakeup_read)
    except OSError as exc:
        print(f"server: accept failed: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    finally:
        listener.close()
    if received:
        # Die of the signal itself so the parent sees "killed by SIGTERM",
        # not an exit status; daemon connection threads die with us.
        signum = received[0]
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return 128 + signum  # only if the signal was somehow not delivered
    return 0


if __name__ == "__main__":
    sys.exit(main())
