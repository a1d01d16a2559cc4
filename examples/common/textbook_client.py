"""What every example client (kv, frames) shares: connect, receive, the end, the CLI.

    python3 client.py HOST:PORT [--file IN] [--timeout S]
    python3 client.py [::1]:PORT ...
    python3 client.py unix:PATH ...

A protocol's client.py holds its own framing and requests and calls
``main(argv, description, parse, run)``: ``parse(data)`` turns the input into
requests (ValueError: a usage error), ``run(sock, requests, out)`` talks to the
server. Exit status: 0 when every request got its reply and the server closed
cleanly; 1 when the server misbehaves (``ServerFault``: resets, closes early,
stays silent past --timeout, default 5 s), with one line on standard error; 2
for a usage error or bad input.

The clients call ``connect`` and ``receive`` through this module
(``textbook_client.receive(...)``), so that a faulty client can replace one of
them (examples/faulty_clients/, examples/<protocol>/faulty_clients/).
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Callable


class ServerFault(Exception):
    """The server did something a correct server of its protocol does not."""


def connect(where: str, timeout: float) -> socket.socket:
    """A connected socket to ``HOST:PORT``, ``[IPv6]:PORT`` or ``unix:PATH``."""
    if where.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(where[len("unix:"):])
        except OSError:
            sock.close()
            raise
        return sock
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, [IPv6]:PORT or unix:PATH, not {where!r}")
    return socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)


def receive(sock: socket.socket, silence: str = "no reply") -> bytes:
    """One recv(); a silence past the timeout or a reset is a ``ServerFault``."""
    try:
        return sock.recv(65536)
    except TimeoutError:
        raise ServerFault(f"{silence} within {sock.gettimeout():g} s") from None
    except ConnectionResetError:
        raise ServerFault("the server reset the connection") from None


class Reader:
    """Replies from the socket; ``buffer`` keeps what arrived past the last one.

    A protocol's reader adds the method that cuts the next reply out of ``buffer``,
    calling ``receive_more()`` until the buffer holds one.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def receive_more(self) -> None:
        """One more recv() into ``buffer``; the server's FIN here is a ``ServerFault``."""
        chunk = receive(self.sock)
        if not chunk:
            raise ServerFault("the server closed the connection before its reply"
                              + (f" ({len(self.buffer)} bytes of it came)" if self.buffer else ""))
        self.buffer += chunk


def expect_close(sock: socket.socket, unread: bytes | bytearray) -> None:
    """After the last reply (``unread``: what came past it): nothing more, then the FIN."""
    if unread:
        raise ServerFault(f"unexpected bytes after the last reply: {bytes(unread[:40])!r}")
    chunk = receive(sock, "the server did not close the connection")
    if chunk:
        raise ServerFault(f"unexpected bytes after the last reply: {chunk[:40]!r}")


def main(argv: list[str] | None, description: str, parse: Callable[[bytes], list[bytes]],
         run: Callable[[socket.socket, list[bytes], object], None]) -> int:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("server", metavar="HOST:PORT|unix:PATH")
    parser.add_argument("--file", metavar="IN", help="requests, one per line (default: stdin)")
    parser.add_argument("--timeout", type=float, default=5.0, metavar="S",
                        help="seconds to wait for each reply (default 5)")
    args = parser.parse_args(argv)
    try:
        if args.file:
            with open(args.file, "rb") as file:
                data = file.read()
        else:
            data = sys.stdin.buffer.read()
    except OSError as exc:
        parser.error(f"cannot read {args.file}: {exc.strerror}")
    try:
        requests = parse(data)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        with connect(args.server, args.timeout) as sock:
            run(sock, requests, sys.stdout.buffer)
    except ValueError as exc:
        parser.error(str(exc))
    except ServerFault as exc:
        print(f"client: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"client: {args.server}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
