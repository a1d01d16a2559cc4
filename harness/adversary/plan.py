"""What the harness's own server does to a client under test: plain data, no I/O.

A scenario composes a ``Plan`` (what is owed, how it is delivered, how the
connection ends) and a ``Listening`` (how the listener accepts) from small
pieces; harness/adversary/connection.py and server.py carry them out on top of
the reference server's code. The defaults are the reference server exactly:
everything owed, written whole, then FIN after draining the client's input.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sockspec.protocol.declared import Protocol
from sockspec.targets.servers import PROFILES


class Ending(enum.Enum):
    """How the server ends a connection once it has sent what it means to send."""

    CLOSE = "close"
    """FIN, then drain the client's input (bounded), then close: the reference server."""

    RESET = "reset"
    """RST in place of FIN: SO_LINGER {1, 0} then close() on TCP. A Unix stream socket
    has no RST; close() with unread input makes the peer's recv() fail with ECONNRESET,
    so the echo responder leaves input unread when it must reset a Unix connection."""

    HALF_CLOSE_AND_WAIT = "half-close-and-wait"
    """shutdown(SHUT_WR) (our FIN), then keep reading until the client closes (bounded)."""

    HOLD_OPEN = "hold-open"
    """No FIN at all: read and discard until the client gives up (bounded)."""


@dataclass(frozen=True)
class Dribble:
    """Write ``segment_bytes`` per send() with TCP_NODELAY, pausing ``pause_s`` in between,
    so the client's recv() sees one tiny piece at a time. With ``read_wait_s``, each
    next piece also waits until the client has read all sent so far (at most that
    long, once: sockspec.drivers.peer.ReadAlone), however busy the machine is."""

    segment_bytes: int = 1
    pause_s: float = 0.001
    read_wait_s: float | None = None


@dataclass(frozen=True)
class FileBody:
    """An http body sent with sendfile() from a file (e.g. a sparse file over 2 GiB)."""

    path: str
    size: int


Body = bytes | FileBody


@dataclass(frozen=True)
class Plan:
    """What the server does on every connection it accepts."""

    profile: str                        # "echo", "http", or a declared protocol's name
    body: Body = b""                    # http: the body served for url_path
    url_path: str = "/"                 # http: the path the client must ask for (else 404)
    announce_length: bool = True        # http: send Content-Length (False: the body ends at FIN)
    answer: bool = True                 # False: read the request or input, never send a byte
    stop_after: int | None = None       # send only this many body (http) or echo (echo) bytes
    dribble: Dribble | None = None      # None: each piece is written whole (sendall)
    echo_until: int | None = None       # echo: stop reading after this many bytes (no FIN wait)
    ending: Ending = Ending.CLOSE
    hold_limit_s: float = 30.0          # longest single wait on the client
    # A declared protocol ([[protocol]], adversary/declared.py): requests are answered
    # as declared; ``cut_reply`` N sends only the first half of reply N's first frame
    # (N from 1), then ends as ``ending`` says (CLOSE: a short reply; RESET: a reset).
    protocol: Protocol | None = None
    cut_reply: int | None = None

    def __post_init__(self) -> None:
        if self.protocol is not None:
            if self.profile != self.protocol.name:
                raise ValueError(f"a plan for {self.profile!r} with protocol "
                                 f"{self.protocol.name!r}")
            if self.stop_after is not None or self.echo_until is not None or self.body:
                raise ValueError("a declared protocol's plan cuts a reply with cut_reply, "
                                 "not stop_after, echo_until or body")
        elif self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}")
        if self.cut_reply is not None and (self.protocol is None or self.cut_reply < 1):
            raise ValueError("cut_reply is a reply number (from 1) of a declared protocol")
        if isinstance(self.body, FileBody) and (self.stop_after is not None or self.dribble):
            raise ValueError("a file body is sent whole with sendfile(): no stop_after, no dribble")
        if not self.url_path.startswith("/"):
            raise ValueError(f"url_path must start with '/': {self.url_path!r}")

    @property
    def body_size(self) -> int:
        return self.body.size if isinstance(self.body, FileBody) else len(self.body)


@dataclass(frozen=True)
class Listening:
    """How the listener treats connection attempts."""

    backlog: int = 4096                 # listen() backlog (the kernel caps it at somaxconn)
    fill_queue: bool = False            # fill the accept queue before the client starts
    accept_after_s: float = 0.0         # start accepting this long after start()
    accepts: bool = True                # False: never accept (the queue stays as it is)

    def describe(self) -> str:
        parts = [f"backlog {self.backlog}"]
        if self.fill_queue:
            parts.append("accept queue filled before the client started")
        if not self.accepts:
            parts.append("never accepting")
        elif self.accept_after_s:
            parts.append(f"accepting only after {self.accept_after_s:g} s")
        return ", ".join(parts)


def head_without_length() -> bytes:
    """A 200 head with no Content-Length: the body ends when the server's FIN arrives
    (HTTP/1.0, RFC 9112 section 6.3 rule 8)."""
    return b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\n"
