"""The harness plays a declared protocol's server ([[protocol]]) to judge its clients.

On each connection: read request frames with the protocol's framing, find the
first exchange (declaration order) whose ``request_pattern()`` the payload fully
matches, keep the connection's variables from its named groups (and from the
exchange's ``capture`` over the reply), and answer with ``reply_frames()`` framed
by the protocol. The Plan bends it as it bends echo and http: ``answer=False``
(read the requests, never answer), ``dribble`` (every reply byte its own
segment), ``cut_reply`` (only the first half of a reply's first frame, then
``ending``: CLOSE is a short reply, RESET a reset in the middle of it), and
``Listening`` for a late accept.

A connection ends after the client's FIN (every complete request before it is
answered), or after one exchange when the declaration does not say
``keeps_connection = true`` (the server of such a protocol closes after each reply).

A request that matches no declared exchange, or matches one whose reply the
declaration does not give (``Exchange.reply`` is None), is recorded as the
connection's ``problem`` (AdversaryServer.problems()) and the connection ends:
the client's verdict names it. ``DeclaredResponder`` is the pure part (payload in,
reply out), for any code that plays a declared server in its own way.

A Unix stream socket has no RST: for a RESET plan the requests are read with
MSG_PEEK and never consumed, so close() finds them unread and the client's
recv() fails with ECONNRESET (as the echo adversary does by leaving input unread).
"""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass, field

from sockspec.adversary.connection import ConnectionLog, Sender, unread_bytes
from sockspec.adversary.plan import Ending, Plan
from sockspec.protocol.declared import Exchange, Framing, Protocol
from sockspec.transport import RECV_CHUNK

PEEK_POLL_S = 0.001          # peek mode: how often to look for more of an incomplete request
NAMES_SHOWN = 12             # request names listed in a connection's evidence


def _short(data: bytes, width: int = 48) -> str:
    return repr(data[:width]) + (f"... ({len(data)} bytes)" if len(data) > width else "")


@dataclass
class Answer:
    """What the server owes for one request: its exchange, the reply payloads and their
    wire bytes; or ``problem`` (one line) when the declaration does not allow it."""

    request: bytes
    number: int                                 # the request's number on the connection
    exchange: Exchange | None = None
    frames: list[bytes] = field(default_factory=list)
    wires: list[bytes] = field(default_factory=list)   # each frame framed by the protocol
    problem: str | None = None

    @property
    def wire(self) -> bytes:
        return b"".join(self.wires)


class DeclaredResponder:
    """One connection's server side of a declared protocol, without sockets:
    ``answer(request payload) -> Answer``. Keeps the connection's variables
    (``values``): the named groups of every request matched so far, and captures."""

    def __init__(self, protocol: Protocol) -> None:
        self.protocol = protocol
        self.values: dict[str, bytes] = {}
        self.count = 0
        self._patterns = [(e, e.request_pattern()) for e in protocol.exchanges]

    def match(self, request: bytes) -> tuple[Exchange, dict[str, bytes]] | None:
        """The first exchange whose request pattern ``request`` fully matches, and the
        variables it carries; None when no declared exchange matches."""
        for exchange, pattern in self._patterns:
            found = pattern.fullmatch(request)
            if found is not None:
                return exchange, {k: v for k, v in found.groupdict().items() if v is not None}
        return None

    def answer(self, request: bytes) -> Answer:
        self.count += 1
        answer = Answer(request, self.count)
        where = f"[[protocol]] {self.protocol.name!r} ({self.protocol.source})"
        found = self.match(request)
        if found is None:
            names = ", ".join(e.name for e in self.protocol.exchanges)
            answer.problem = (f"the client's request #{self.count} {_short(request)} matches no "
                              f"exchange declared in {where} ({names})")
            return answer
        exchange, carried = found
        answer.exchange = exchange
        self.values.update(carried)
        values = {"n": str(self.count).encode(), **self.values}
        frames = exchange.reply_frames(values, request)
        if frames is None:
            answer.problem = (f"the client's request #{self.count} {_short(request)} is exchange "
                              f"{exchange.name!r}, whose reply the harness cannot know: declare "
                              f"reply = ... on exchange {exchange.name!r} in {where}, line "
                              f"{exchange.line}")
            return answer
        try:
            answer.wires = [self.protocol.framing.encode(frame) for frame in frames]
        except ValueError as exc:
            answer.problem = (f"the reply declared for exchange {exchange.name!r} does not fit "
                              f"the framing ({exc}): fix reply = ... in {where}")
            return answer
        answer.frames = list(frames)
        if exchange.capture is not None and frames:
            taken = exchange.capture.take(frames[0])
            if taken is not None:
                self.values[exchange.capture.name] = taken
        return answer


class RequestProblem(Exception):
    """The client's bytes break the framing, or its stream ended inside a request."""


class RequestReader:
    """Request payloads from a socket, cut by the protocol's framing.

    ``next()`` returns the next payload, or None when the client's stream ended
    between requests (``end``: "FIN" or "RST"). Waits are bounded by the socket's
    timeout (TimeoutError). ``peek``: nothing is consumed (MSG_PEEK), so the
    requests stay unread in the socket's receive queue.
    """

    def __init__(self, sock: socket.socket, framing: Framing, *, peek: bool = False) -> None:
        self.sock = sock
        self.framing = framing
        self.peek = peek
        self.buffer = bytearray()      # unconsumed bytes (peek: everything queued)
        self.offset = 0                # peek: bytes of ``buffer`` already cut into requests
        self.received = 0
        self.end = ""

    def next(self) -> bytes | None:
        while True:
            try:
                pending = self.buffer[self.offset:] if self.offset else self.buffer
                found = self.framing.decode(pending, at_end=self.end == "FIN")
            except ValueError as exc:
                raise RequestProblem(f"the client's bytes break the framing "
                                     f"({self.framing.describe()}): {exc}") from None
            if found is not None:
                payload, used = found
                if self.peek:
                    self.offset += used
                else:
                    del self.buffer[:used]
                return payload
            if self.end:
                left = len(self.buffer) - self.offset
                if left:
                    raise RequestProblem(f"the client's stream ended ({self.end}) inside a "
                                         f"request ({left} bytes of an incomplete frame)")
                return None
            self._fill()

    def _fill(self) -> None:
        if self.peek:
            self._peek()
            return
        try:
            chunk = self.sock.recv(RECV_CHUNK)
        except (ConnectionResetError, BrokenPipeError):
            self.end = "RST"
            return
        if not chunk:
            self.end = "FIN"
            return
        self.received += len(chunk)
        self.buffer += chunk

    def _peek(self) -> None:
        """Wait until more bytes are queued than already seen (peek them all) or the
        client's FIN; bounded by the socket's timeout."""
        deadline = time.monotonic() + (self.sock.gettimeout() or 30.0)
        poller = select.poll()
        poller.register(self.sock, select.POLLIN | select.POLLRDHUP)
        while True:
            queued = unread_bytes(self.sock)
            if queued > len(self.buffer):
                self.buffer = bytearray(self.sock.recv(queued, socket.MSG_PEEK))
                self.received = len(self.buffer)
                return
            mask = sum(m for _, m in poller.poll(0))
            if mask & (select.POLLRDHUP | select.POLLHUP):
                if unread_bytes(self.sock) > len(self.buffer):
                    continue          # bytes that came just before the FIN
                self.end = "FIN"
                return
            if mask & select.POLLERR:
                self.end = "RST"
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if queued:
                time.sleep(min(PEEK_POLL_S, left))   # readable all along: look again shortly
            else:
                poller.poll(left * 1000)              # wakes on data or the client's FIN


def serve_declared(conn: socket.socket, plan: Plan, sender: Sender, log: ConnectionLog) -> None:
    """Answer the client's requests as the declaration says, bent by the plan."""
    protocol = plan.protocol
    assert protocol is not None
    peek = plan.ending is Ending.RESET and conn.family == socket.AF_UNIX
    reader = RequestReader(conn, protocol.framing, peek=peek)
    responder = DeclaredResponder(protocol)
    names: list[str] = []
    keeps = protocol.properties.keeps_connection is True
    try:
        while True:
            try:
                request = reader.next()
            except RequestProblem as exc:
                log.problem = str(exc)
                return
            if request is None:
                log.client_end, log.client_end_at = reader.end, time.monotonic()
                return
            answer = responder.answer(request)
            names.append(answer.exchange.name if answer.exchange else "(undeclared)")
            log.request = _describe_requests(names)
            if answer.problem:
                log.problem = answer.problem
                return
            log.owed += len(answer.wire)
            if not plan.answer:
                continue
            if plan.cut_reply == answer.number:
                first = len(answer.wires[0])
                sender.cut_after(first // 2 if first > 1 else 0)
                sender.send(answer.wire)
                return
            sender.send(answer.wire)
            log.replies += answer.frames
            if not keeps:
                log.request += " (one exchange per connection: keeps_connection is not declared)"
                return
    finally:
        log.received = reader.received


def _describe_requests(names: list[str]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN])
    more = f", ... ({len(names)} in all)" if len(names) > NAMES_SHOWN else ""
    return f"requests: {shown}{more}"


def reply_report(replies: list[bytes], report: str) -> bytes:
    """What a client whose [[client]] says ``report`` must report for ``replies``:
    "replies": each payload then a newline; "replies_hex": each payload in lowercase
    hex then a newline."""
    if report == "replies_hex":
        return b"".join(r.hex().encode() + b"\n" for r in replies)
    return b"".join(r + b"\n" for r in replies)


__all__ = ["Answer", "DeclaredResponder", "RequestProblem", "RequestReader", "reply_report",
           "serve_declared"]
