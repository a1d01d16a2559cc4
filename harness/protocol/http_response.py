"""Pure parser for an HTTP/1.x response head (status line + header fields).

No sockets: feed bytes with ``receive_data(data)`` (``b""`` means the peer
sent EOF) and ask ``next_event()`` for either ``NEED_DATA`` or the parsed
``ResponseHead``. Bytes that arrived after the blank line are the start of the
body and are available as ``trailing_data``. Modelled on h11, but only the
part a test client needs: one response to one request, body framed by
Content-Length or by the server closing the connection (RFC 9112 section 6.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from sockspec.errors import PeerError

# A head larger than this is treated as garbage; real servers send a few hundred bytes.
MAX_HEAD_BYTES: Final = 64 * 1024

# RFC 9112 section 4: status-line = HTTP-version SP status-code SP [ reason-phrase ].
# Many servers omit the space before an empty reason, so it is optional here.
_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d) (\d{3})(?: ([^\r\n]*))?")
# RFC 9110 section 5.6.2: token characters allowed in a field name.
_FIELD_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class MalformedResponse(PeerError):
    """The peer's response head is not valid HTTP/1.x (or ended before it was complete)."""


class _NeedData:
    """Sentinel event: the head is not complete yet; feed more bytes."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()


@dataclass(frozen=True)
class ResponseHead:
    version: str                            # "HTTP/1.0"
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]    # (lower-cased name, value) in arrival order
    size: int                               # bytes of the head including the blank line

    def header(self, name: str) -> str | None:
        """Value of the first field called ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key == wanted), None)

    def header_values(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.headers if key == wanted]

    @property
    def has_no_body(self) -> bool:
        """1xx, 204 and 304 responses never carry a body (RFC 9112 section 6.3 rule 1)."""
        return 100 <= self.status < 200 or self.status in (204, 304)

    @property
    def content_length(self) -> int | None:
        """The declared body length, or None when the body ends at EOF."""
        return declared_content_length(self)


def declared_content_length(head: ResponseHead) -> int | None:
    """Content-Length as one integer; MalformedResponse if invalid or contradictory.

    RFC 9110 section 8.6 allows a repeated field or list only when every value
    is the same; anything else is an unrecoverable framing error.
    """
    if head.header("transfer-encoding") is not None:
        # RFC 9112 section 6.1: a server MUST NOT send Transfer-Encoding in reply to
        # an HTTP/1.0 request, which is all this client sends.
        raise MalformedResponse(
            f"Transfer-Encoding {head.header('transfer-encoding')!r} in reply to an "
            "HTTP/1.0 request"
        )
    values = {
        item.strip()
        for field in head.header_values("content-length")
        for item in field.split(",")
    }
    if not values:
        return None
    if len(values) > 1:
        raise MalformedResponse(f"conflicting Content-Length values {sorted(values)}")
    (text,) = values
    if not text.isascii() or not text.isdigit():
        raise MalformedResponse(f"Content-Length {text!r} is not a non-negative integer")
    return int(text)


def parse_response_head(head: bytes) -> ResponseHead:
    """Parse a complete head (status line through the blank line)."""
    lines = head.split(b"\n")
    # Accept bare LF as a line end (RFC 9112 section 2.2 lets a recipient do so).
    lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    while lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise MalformedResponse("empty response head")
    match = _STATUS_LINE.fullmatch(lines[0])
    if match is None:
        raise MalformedResponse(f"bad status line {_excerpt(lines[0])}")
    major, minor, status, reason = match.groups()
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            # RFC 9112 section 5.2: obs-fold is deprecated; a client may reject it.
            raise MalformedResponse(f"obsolete line folding in header {_excerpt(line)}")
        name, colon, value = line.partition(b":")
        if not colon or _FIELD_NAME.fullmatch(name) is None:
            # Covers whitespace before the colon too (RFC 9112 section 5.1 forbids it).
            raise MalformedResponse(f"bad header line {_excerpt(line)}")
        if b"\r" in value or b"\x00" in value:
            # RFC 9110 section 5.5: a field value with CR or NUL must be rejected.
            raise MalformedResponse(f"CR or NUL inside header line {_excerpt(line)}")
        headers.append((name.decode("ascii").lower(), value.strip(b" \t").decode("latin-1")))
    return ResponseHead(
        version=f"HTTP/{major.decode()}.{minor.decode()}",
        status=int(status),
        reason=(reason or b"").decode("latin-1"),
        headers=tuple(headers),
        size=len(head),
    )


class ResponseHeadParser:
    """Incremental head parser: bytes in, one ``ResponseHead`` out."""

    def __init__(self, max_head_bytes: int = MAX_HEAD_BYTES) -> None:
        self._max_head_bytes = max_head_bytes
        self._buffer = bytearray()
        self._eof = False
        self._head: ResponseHead | None = None
        self.trailing_data = b""

    @property
    def bytes_received(self) -> int:
        return len(self._buffer) + len(self.trailing_data) + (self._head.size if self._head else 0)

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer; ``b""`` records EOF."""
        if self._head is not None:
            raise RuntimeError("the head is complete; body bytes belong to the caller")
        if not data:
            self._eof = True
        self._buffer += data

    def next_event(self) -> ResponseHead | _NeedData:
        if self._head is not None:
            return self._head
        end = _find_head_end(self._buffer)
        if end is None:
            if len(self._buffer) > self._max_head_bytes:
                raise MalformedResponse(
                    f"no end of response head within {self._max_head_bytes} bytes"
                )
            if self._eof:
                raise MalformedResponse(
                    f"peer closed after {len(self._buffer)} bytes, before the end of the "
                    "response head"
                )
            return NEED_DATA
        self._head = parse_response_head(bytes(self._buffer[:end]))
        self.trailing_data = bytes(self._buffer[end:])
        self._buffer.clear()
        return self._head


def _find_head_end(buffer: bytearray) -> int | None:
    """Offset just past the blank line ending the head (CRLFCRLF or LFLF)."""
    candidates = [
        pos + len(marker)
        for marker in (b"\r\n\r\n", b"\n\n", b"\n\r\n")
        if (pos := buffer.find(marker)) >= 0
    ]
    return min(candidates) if candidates else None


def _excerpt(line: bytes, limit: int = 60) -> str:
    return repr(line[:limit]) + ("..." if len(line) > limit else "")
