"""Command line of the reference client: ``python -m sockspec.reference.client``.

    echo ADDRESS [--data TEXT | --file F] [--chunk N] [--no-half-close]
    get ADDRESS /PATH [-o OUTFILE] [--expect-length N] [--expect-digest D]
    upload ADDRESS FILE [--expect-echo]
    ping ADDRESS [--size N] [--count N] [--no-nodelay]

Each takes ``--timeout S`` (default 10). ADDRESS is tcp:HOST:PORT, HOST:PORT,
[V6]:PORT or unix:PATH, loopback only. Exit 0 on success, 1 when the peer
misbehaves or cannot be reached, 2 for usage errors; a failure prints exactly
one line ``client: <message>`` on stderr.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from sockspec.errors import PeerError, SockspecError, UsageError
from sockspec.reference.client import (
    HttpResponse,
    download,
    echo_roundtrip,
    file_digest,
    ping_pong,
    upload_file,
)
from sockspec.reference.client_streams import BodySink
from sockspec.transport import StreamEnd

DEFAULT_TIMEOUT_S = 10.0
PROGRAM = "client"


class _OneLineParser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _positive_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(text)
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(text)
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


_positive_float.__name__ = "positive number"
_positive_int.__name__ = "positive integer"
_non_negative_int.__name__ = "non-negative integer"


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="python -m sockspec.reference.client", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("address", metavar="ADDRESS")
        sub.add_argument("--timeout", type=_positive_float, default=DEFAULT_TIMEOUT_S,
                         metavar="S", help="seconds to wait for connect and for each read")
        return sub

    echo = command("echo", "send bytes to an echo server, print what comes back")
    source = echo.add_mutually_exclusive_group()
    source.add_argument("--data", metavar="TEXT", help="bytes to send (default: stdin)")
    source.add_argument("--file", metavar="F", help="send this file's bytes")
    echo.add_argument("--chunk", type=_positive_int, metavar="N", help="send N bytes per call")
    echo.add_argument("--no-half-close", action="store_true",
                      help="do not shutdown(SHUT_WR); read back exactly what was sent")
    echo.set_defaults(run=_run_echo)

    get = command("get", "HTTP/1.0 GET; body to stdout or -o, summary line to stderr")
    get.add_argument("path", metavar="/PATH")
    get.add_argument("-o", "--output", metavar="OUTFILE", help="write the body here")
    get.add_argument("--expect-length", type=_non_negative_int, metavar="N")
    get.add_argument("--expect-digest", metavar="D", help="e.g. xxh3_64:0123456789abcdef")
    get.set_defaults(run=_run_get)

    upload = command("upload", "sendfile() a file, half-close, count what comes back")
    upload.add_argument("file", metavar="FILE")
    upload.add_argument("--expect-echo", action="store_true",
                        help="fail unless the peer sends the file back unchanged")
    upload.set_defaults(run=_run_upload)

    ping = command("ping", "round trips through an echo server; prints p50/p99 in µs")
    ping.add_argument("--size", type=_positive_int, default=64, metavar="N")
    ping.add_argument("--count", type=_positive_int, default=1000, metavar="N")
    ping.add_argument("--no-nodelay", action="store_true", help="leave Nagle on")
    ping.set_defaults(run=_run_ping)
    return parser


def _read_local(path: str) -> bytes:
    try:
        with open(path, "rb") as source:
            return source.read()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc


def _run_echo(args: argparse.Namespace) -> int:
    if args.file is not None:
        payload = _read_local(args.file)
    elif args.data is not None:
        payload = args.data.encode("utf-8", "surrogateescape")
    else:
        payload = sys.stdin.buffer.read()
    result = echo_roundtrip(args.address, payload, timeout=args.timeout, chunk=args.chunk,
                            half_close=not args.no_half_close)
    sys.stdout.buffer.write(result.received)
    sys.stdout.buffer.flush()
    expected_end = StreamEnd.LIMIT if args.no_half_close else StreamEnd.FIN
    if not result.matches() or result.end is not expected_end or result.send_error:
        raise PeerError(f"echo from {args.address}: {result.describe()}")
    return 0


def _run_get(args: argparse.Namespace) -> int:
    if args.output is None:
        response = _download(args, sys.stdout.buffer.write)
        sys.stdout.buffer.flush()
    else:
        try:
            output = open(args.output, "wb")
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror}") from exc
        with output:
            response = _download(args, output.write)
    print(response.describe(), file=sys.stderr)
    return 0


def _download(args: argparse.Namespace, sink: BodySink) -> HttpResponse:
    return download(args.address, args.path, expect_length=args.expect_length,
                    expect_digest=args.expect_digest, timeout=args.timeout, sink=sink)


def _run_upload(args: argparse.Namespace) -> int:
    try:
        result = upload_file(args.address, args.file, timeout=args.timeout)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror}") from exc
    print(result.describe())
    if result.send_error or result.end is not StreamEnd.FIN:
        raise PeerError(f"upload to {args.address}: {result.describe()}")
    if args.expect_echo:
        digest = file_digest(args.file)
        if result.received_length != result.size or result.received_digest != digest:
            raise PeerError(
                f"upload to {args.address}: echoed {result.received_length} of {result.size} "
                f"bytes, {result.received_digest}, expected {digest}"
            )
    return 0


def _run_ping(args: argparse.Namespace) -> int:
    round_trips = ping_pong(args.address, args.size, args.count, timeout=args.timeout,
                            nodelay=not args.no_nodelay)
    micro = sorted(t * 1e6 for t in round_trips)
    print(
        f"{len(micro)} round trips of {args.size} bytes: p50 {percentile(micro, 50):.1f} µs, "
        f"p99 {percentile(micro, 99):.1f} µs, min {micro[0]:.1f} µs, max {micro[-1]:.1f} µs"
    )
    return 0


def percentile(sorted_values: Sequence[float], percent: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(percent / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except SockspecError as exc:
        print(f"{PROGRAM}: {exc}", file=sys.stderr)
        return exc.exit_status
    except BrokenPipeError:
        # stdout's reader went away; point stdout at /dev/null so the flush at
        # interpreter exit does not raise a second BrokenPipeError.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print(f"{PROGRAM}: output closed early (broken pipe)", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{PROGRAM}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROGRAM}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
