"""A small kv client: send commands, print the replies.

    python3 client.py HOST:PORT [--file IN] [--timeout S]
    python3 client.py [::1]:PORT ...
    python3 client.py unix:PATH ...

Reads one command per line (from IN, or standard input; blank lines are
skipped), sends each with its CRLF, waits for its reply line and prints it. At
the end of the input it sends its FIN and waits for the server's. After QUIT it
stops: the server ends the connection.

Exit status: 0 when every command got its reply and the server closed cleanly;
1 when the server misbehaves (resets, closes early, stays silent past --timeout,
default 5 s), with one line on standard error; 2 for a usage error.
"""

from __future__ import annotations

import argparse
import socket
import sys

MAX_LINE = 8 * 1024 * 1024 + 2  # a reply line longer than this breaks the protocol


class ServerFault(Exception):
    """The server did something a correct kv server does not."""


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


class LineReader:
    """Reply lines from the socket; keeps what arrived past the last one."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def line(self) -> bytes:
        searched = 0
        while (end := self.buffer.find(b"\r\n", searched)) < 0:
            if len(self.buffer) > MAX_LINE:
                raise ServerFault(f"a reply line longer than {MAX_LINE} bytes")
            searched = max(0, len(self.buffer) - 1)
            chunk = receive(self.sock)
            if not chunk:
                raise ServerFault("the server closed the connection before its reply"
                                  + (f" ({len(self.buffer)} bytes of it came)" if self.buffer else ""))
            self.buffer += chunk
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 2]
        return line


def receive(sock: socket.socket, silence: str = "no reply") -> bytes:
    try:
        return sock.recv(65536)
    except TimeoutError:
        raise ServerFault(f"{silence} within {sock.gettimeout():g} s") from None
    except ConnectionResetError:
        raise ServerFault("the server reset the connection") from None


def expect_close(sock: socket.socket, reader: LineReader) -> None:
    """After our last command: nothing more from the server, then its FIN."""
    if reader.buffer:
        raise ServerFault(f"unexpected bytes after the last reply: {bytes(reader.buffer[:40])!r}")
    chunk = receive(sock, "the server did not close the connection")
    if chunk:
        raise ServerFault(f"unexpected bytes after the last reply: {chunk[:40]!r}")


def run(sock: socket.socket, commands: list[bytes], out) -> None:
    reader = LineReader(sock)
    for command in commands:
        try:
            sock.sendall(command + b"\r\n")
        except OSError as exc:
            raise ServerFault(f"cannot send {command[:40]!r}: {exc.strerror or exc}") from None
        out.write(reader.line() + b"\n")
        out.flush()
        if command.strip().upper() == b"QUIT":
            break
    else:
        sock.shutdown(socket.SHUT_WR)  # our FIN: the server answers what it has, then closes
    expect_close(sock, reader)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", metavar="HOST:PORT|unix:PATH")
    parser.add_argument("--file", metavar="IN", help="commands, one per line (default: stdin)")
    parser.add_argument("--timeout", type=float, default=5.0, metavar="S",
                        help="seconds to wait for each reply (default 5)")
    args = parser.parse_args(argv)
    try:
        if args.file:
            with open(args.file, "rb") as file:
                text = file.read()
        else:
            text = sys.stdin.buffer.read()
    except OSError as exc:
        parser.error(f"cannot read {args.file}: {exc.strerror}")
    commands = [line.rstrip(b"\r") for line in text.split(b"\n") if line.strip()]
    try:
        with connect(args.server, args.timeout) as sock:
            run(sock, commands, sys.stdout.buffer)
    except ValueError as exc:
        parser.error(str(exc))
    except ServerFault as exc:
        print(f"client: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"client: {args.server}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
