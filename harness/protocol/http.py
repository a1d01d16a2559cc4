"""The HTTP/1.0 GET subset served by the reference server, without any I/O.

h11 style: feed bytes with ``RequestParser.receive_data`` (``b""`` means the
client sent its FIN), then ask ``next_event()`` for one of:

* ``NeedData``         -- the request head is not complete yet; read more.
* ``Request``          -- a complete, well-formed head (method, target, version, headers).
* ``ConnectionClosed`` -- EOF before a single byte of a request: owe nothing.
* ``ParseError``       -- owe an error response with ``status`` and close.

Decisions (documented here because servers under test are judged against them):

* The head (request line, headers, blank line) may be at most ``MAX_HEAD_BYTES``
  (8 KiB) including line ends; beyond that the answer is 431.
* Lines end with CRLF; a bare LF is tolerated, a bare CR elsewhere is a 400.
  Empty lines before the request line are skipped (RFC 9112 section 2.2).
* The request line is exactly ``METHOD SP TARGET SP HTTP/x.y``. ``HTTP/1.0`` and
  ``HTTP/1.1`` are accepted; another well-formed ``HTTP/d.d`` gets 505.
* A well-formed method other than GET gets 405 (with ``Allow: GET``); HEAD is
  not part of the subset. A malformed method token is a 400.
* The target is origin-form (starts with ``/``), printable ASCII only.
* Header lines are ``name: value`` with a token name and no space before the
  colon; obsolete line folding is refused (400), as RFC 9112 section 5.2 allows.
* A request body is never read: the server answers and then discards whatever
  follows while closing gracefully (see harness/reference/server.py).

After the first terminal event (Request, ParseError, ConnectionClosed) the
parser is finished and keeps returning that event: one request per connection,
as in HTTP/1.0 without keep-alive.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

MAX_HEAD_BYTES = 8 * 1024

REASONS: dict[int, str] = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    505: "HTTP Version Not Supported",
}

# RFC 9110 section 5.6.2: token = 1*tchar
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(rb"HTTP/([0-9])\.([0-9])")
_SUPPORTED_VERSIONS = (b"HTTP/1.0", b"HTTP/1.1")
# Origin-form target: "/" then visible ASCII (0x21-0x7e); no spaces, no controls.
_TARGET = re.compile(rb"/[\x21-\x7e]*")
# Field values: visible ASCII, obs-text (0x80-0xff), space and tab; no controls.
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]  # (lower-cased name, value), in arrival order


@dataclass(frozen=True)
class NeedData:
    pass


@dataclass(frozen=True)
class ConnectionClosed:
    pass


@dataclass(frozen=True)
class ParseError:
    status: int
    reason: str  # for logs and test failures; not sent to the client


Event = Request | NeedData | ConnectionClosed | ParseError


class RequestParser:
    """Incremental parser for one request head; bounded to MAX_HEAD_BYTES."""

    def __init__(self, max_head_bytes: int = MAX_HEAD_BYTES) -> None:
        self._buffer = bytearray()
        self._max_head_bytes = max_head_bytes
        self._eof = False
        self._result: Request | ParseError | ConnectionClosed | None = None

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the peer; ``b""`` means EOF (the peer's FIN)."""
        if self._result is not None:
            return  # finished: pipelined or body bytes are not ours to parse
        if not data:
            self._eof = True
            return
        # Keep at most one byte past the limit: enough to know it was exceeded,
        # so memory stays bounded whatever the client sends.
        room = self._max_head_bytes + 1 - len(self._buffer)
        if room > 0:
            self._buffer += data[:room]

    def next_event(self) -> Event:
        if self._result is None:
            self._result = self._parse()
        return NeedData() if self._result is None else self._result

    def _parse(self) -> Request | ParseError | ConnectionClosed | None:
        head_end = _find_head_end(self._buffer)
        if head_end is None or head_end > self._max_head_bytes:
            if len(self._buffer) > self._max_head_bytes:
                return ParseError(431, f"request head exceeds {self._max_head_bytes} bytes")
            if self._eof:
                if not self._buffer.strip(b"\r\n"):
                    return ConnectionClosed()
                return ParseError(400, "connection closed before the end of the request head")
            return None
        return parse_head(bytes(self._buffer[:head_end]))


def _find_head_end(buffer: bytearray) -> int | None:
    """Index just past the blank line ending the head, skipping leading blank lines."""
    start = 0
    while start < len(buffer) and buffer[start] in b"\r\n":
        start += 1
    # The blank line is "\n" optionally preceded by "\r", right after a "\n".
    crlf = buffer.find(b"\n\r\n", start)
    lf = buffer.find(b"\n\n", start)
    ends = [i + 3 for i in (crlf,) if i >= 0] + [i + 2 for i in (lf,) if i >= 0]
    return min(ends) if ends else None


def parse_head(head: bytes) -> Request | ParseError:
    """Parse a complete head (ending with its blank line) into a Request or a 4xx/5xx."""
    lines = head.split(b"\n")
    lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    while lines and lines[0] == b"":
        lines.pop(0)  # empty lines before the request line are tolerated
    while lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        return ParseError(400, "empty request")
    for line in lines:
        if b"\r" in line:
            return ParseError(400, "bare CR inside a line")
    request_line, header_lines = lines[0], lines[1:]
    parts = request_line.split(b" ")
    if len(parts) != 3:
        return ParseError(400, f"request line is not METHOD SP TARGET SP VERSION: {request_line!r}")
    method, target, version = parts
    if not _TOKEN.fullmatch(method):
        return ParseError(400, f"malformed method {method!r}")
    if not _VERSION.fullmatch(version):
        return ParseError(400, f"malformed version {version!r}")
    if version not in _SUPPORTED_VERSIONS:
        return ParseError(505, f"unsupported version {version.decode()}")
    if not _TARGET.fullmatch(target):
        return ParseError(400, f"target is not origin-form printable ASCII: {target!r}")
    headers = []
    for line in header_lines:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            return ParseError(400, f"malformed header line {line!r}")
        value = value.strip(b" \t")
        if not _FIELD_VALUE.fullmatch(value):
            return ParseError(400, f"control character in header {name!r}")
        headers.append((name.decode("ascii").lower(), value.decode("latin-1")))
    if method != b"GET":
        return ParseError(405, f"method {method.decode()} not allowed")
    return Request(method.decode(), target.decode("ascii"), version.decode(), tuple(headers))


# ---------------------------------------------------------------- path policy


@dataclass(frozen=True)
class ResolvedFile:
    path: str  # real path (symlinks resolved), inside the real root


@dataclass(frozen=True)
class Refused:
    status: int  # 400, 403 or 404
    reason: str


def resolve_path(root: str, target: str) -> ResolvedFile | Refused:
    """Map a request target to a regular file inside ``root``, or say why not.

    The query string is ignored. Percent-decoding happens before any check, so
    ``%2e%2e`` and ``..%2f`` are the ``..`` they spell. A NUL byte is a 400; any
    ``..`` segment, or a real path (after symlinks) outside the real root, is a
    403; a missing file or a directory is a 404; anything else that is not a
    regular file (FIFO, device, socket) is a 403.
    """
    path_part = target.split("?", 1)[0]
    if not path_part.startswith("/"):
        return Refused(400, f"target {target!r} is not origin-form")
    decoded = unquote_to_bytes(path_part)
    if b"\x00" in decoded:
        return Refused(400, "NUL byte in path")
    segments = [s for s in decoded.split(b"/") if s not in (b"", b".")]
    if b".." in segments:
        return Refused(403, "'..' segment in path")
    real_root = os.path.realpath(os.fsencode(root))
    real_path = os.path.realpath(os.path.join(real_root, *segments))
    if os.path.commonpath([real_root, real_path]) != real_root:
        return Refused(403, "path resolves outside the root")
    try:
        info = os.stat(real_path)
    except OSError as exc:
        return Refused(404, f"cannot stat: {exc.strerror}")
    if stat.S_ISDIR(info.st_mode):
        return Refused(404, "is a directory")
    if not stat.S_ISREG(info.st_mode):
        return Refused(403, "not a regular file")
    return ResolvedFile(os.fsdecode(real_path))


# ------------------------------------------------------------------ responses


def response_head(content_length: int) -> bytes:
    """The head of a successful response; the body is the file's bytes."""
    return f"HTTP/1.0 200 OK\r\nContent-Length: {content_length}\r\n\r\n".encode("ascii")


def error_response(status: int) -> bytes:
    """A complete error response with a short text body; the server closes after it."""
    reason = REASONS.get(status, "Error")
    body = f"{status} {reason}\n".encode("ascii")
    extra = "Allow: GET\r\n" if status == 405 else ""
    head = (
        f"HTTP/1.0 {status} {reason}\r\n"
        f"Content-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"{extra}"
        f"Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body
