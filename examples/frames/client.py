"""A small frames client: send requests, print the replies.

    python3 client.py HOST:PORT [--file IN] [--timeout S]
    python3 client.py [::1]:PORT ...
    python3 client.py unix:PATH ...

Reads one request per line (from IN, or standard input; blank lines are
skipped): the opcode in hex, then the body in hex (spaces allowed), e.g.
``01 68656c6c6f`` (ECHO "hello") or ``03`` (INFO). Sends each with its 4-byte
length prefix, waits for its reply and prints it the same way: ``81 68656c6c6f``.
At the end of the input it sends its FIN and waits for the server's.

Exit status: 0 when every request got its reply and the server closed cleanly;
1 when the server misbehaves (resets, closes early, stays silent past --timeout,
default 5 s), with one line on standard error; 2 for a usage error or bad input.
"""

from __future__ import annotations

import argparse
import socket
import sys

HEADER = 4
MAX_PAYLOAD = 16 * 1024 * 1024


class ServerFault(Exception):
    """The server did something a correct frames server does not."""


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


def parse_request(number: int, line: str) -> bytes:
    """``OPCODE-HEX [BODY-HEX]`` as a payload; ValueError naming the line."""
    opcode, _, body = line.strip().partition(" ")
    try:
        if len(opcode) != 2:
            raise ValueError(f"the opcode is one byte in hex (2 digits), not {opcode!r}")
        return bytes.fromhex(opcode) + bytes.fromhex(body)
    except ValueError as exc:
        raise ValueError(f"line {number}: {exc}") from None


class FrameReader:
    """Reply payloads from the socket; keeps what arrived past the last one."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def frame(self) -> bytes:
        while True:
            if len(self.buffer) >= HEADER:
                length = int.from_bytes(self.buffer[:HEADER], "big")
                if length > MAX_PAYLOAD:
                    raise ServerFault(f"a reply length of {length} bytes (over 16 MiB)")
                if len(self.buffer) >= HEADER + length:
                    payload = bytes(self.buffer[HEADER:HEADER + length])
                    del self.buffer[:HEADER + length]
                    return payload
            chunk = receive(self.sock)
            if not chunk:
                raise ServerFault("the server closed the connection before its reply"
                                  + (f" ({len(self.buffer)} bytes of it came)" if self.buffer else ""))
            self.buffer += chunk


def receive(sock: socket.socket, silence: str = "no reply") -> bytes:
    try:
        return sock.recv(65536)
    except TimeoutError:
        raise ServerFault(f"{silence} within {sock.gettimeout():g} s") from None
    except ConnectionResetError:
        raise ServerFault("the server reset the connection") from None


def show(payload: bytes) -> bytes:
    """A reply as printed: opcode in hex, a space and the body in hex (if any)."""
    if not payload:
        raise ServerFault("an empty reply (no opcode)")
    return (payload[:1].hex() + (" " + payload[1:].hex() if len(payload) > 1 else "")).encode()


def run(sock: socket.socket, requests: list[bytes], out) -> None:
    reader = FrameReader(sock)
    for request in requests:
        try:
            sock.sendall(len(request).to_bytes(HEADER, "big") + request)
        except OSError as exc:
            raise ServerFault(f"cannot send request {request[:1].hex()}: "
                              f"{exc.strerror or exc}") from None
        out.write(show(reader.frame()) + b"\n")
        out.flush()
    sock.shutdown(socket.SHUT_WR)  # our FIN: the server answers what it has, then closes
    if reader.buffer:
        raise ServerFault(f"unexpected bytes after the last reply: {bytes(reader.buffer[:40])!r}")
    if chunk := receive(sock, "the server did not close the connection"):
        raise ServerFault(f"unexpected bytes after the last reply: {chunk[:40]!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", metavar="HOST:PORT|unix:PATH")
    parser.add_argument("--file", metavar="IN", help="requests, one per line (default: stdin)")
    parser.add_argument("--timeout", type=float, default=5.0, metavar="S",
                        help="seconds to wait for each reply (default 5)")
    args = parser.parse_args(argv)
    try:
        if args.file:
            with open(args.file, encoding="ascii") as file:
                text = file.read()
        else:
            text = sys.stdin.read()
        requests = [parse_request(number, line)
                    for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    except (OSError, ValueError) as exc:
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


if __name__ == "__main__":
    sys.exit(main())
