"""One connection of the harness's server, carried out as its Plan says.

The reference server's pieces do the ordinary work (sockspec.reference.connection:
read_request, send_file, close_gracefully; sockspec.protocol: what is owed). The
plan bends three things: how much of what is owed is sent (``stop_after``), how
it is written (``Dribble``), and how the connection ends (``Ending``). Every
wait is bounded by ``plan.hold_limit_s``; setting ``stop`` (and shutting the
socket down, which AdversaryServer.stop does) ends any of them at once.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios
import threading
import time
from dataclasses import dataclass, field

from sockspec.adversary.plan import Dribble, Ending, FileBody, Plan, head_without_length
from sockspec.drivers.peer import ReadAlone, read_everything
from sockspec.protocol import http
from sockspec.protocol.echo import ECHO_BUFFER_BYTES, EchoSession, FinishWithFin
from sockspec.reference import connection as reference
from sockspec.transport import abort, describe_os_error


class Stopped(Exception):
    """The harness stopped the server while this connection was still being served."""


@dataclass
class ConnectionLog:
    """What the server saw and did on one connection: evidence for a verdict."""

    number: int
    accepted_at: float                  # time.monotonic()
    request: str = ""                   # the http request line, or the echo input size
    received: int = 0                   # bytes read from the client
    sent: int = 0                       # bytes written to the client (head included)
    segments: int = 0                   # send() calls
    cut: bool = False                   # stopped sending at plan.stop_after
    ending: str = ""                    # what the server did at the end
    fin_at: float | None = None         # when the server's FIN went out
    client_end: str = ""                # how the client's side ended: FIN, RST, ...
    client_end_at: float | None = None
    error: str = ""
    # Declared protocols: a request the declaration does not allow (evidence against the
    # client or the declaration), the reply bytes owed, and the reply payloads sent whole.
    problem: str = ""
    owed: int = 0
    replies: list[bytes] = field(default_factory=list)
    read_alone: str = ""                # dribbled with read_wait_s: did it read each piece alone

    def describe(self, origin: float) -> str:
        def at(moment: float | None) -> str:
            return "" if moment is None else f" at {moment - origin:+.3f} s"

        text = (f"connection {self.number} (accepted{at(self.accepted_at)}): "
                f"{self.request or 'no request'}; received {self.received} bytes, "
                f"sent {self.sent} in {self.segments} send() calls"
                f"{' (cut short on purpose)' if self.cut else ''}")
        if self.ending:
            text += f"; then {self.ending}{at(self.fin_at)}"
        if self.client_end:
            text += f"; client side ended by {self.client_end}{at(self.client_end_at)}"
        if self.error:
            text += f"; {self.error}"
        if self.problem:
            text += f"; {self.problem}"
        if self.read_alone:
            text += f"; client read each piece alone: {self.read_alone}"
        return text


class Sender:
    """Writes what is owed the way the plan says: whole or dribbled, up to ``stop_after``."""

    def __init__(self, conn: socket.socket, plan: Plan, log: ConnectionLog,
                 stop: threading.Event) -> None:
        self._conn, self._plan, self._log, self._stop = conn, plan, log, stop
        self._counted = 0
        self.limit = plan.stop_after
        self._alone: ReadAlone | None = None
        if plan.dribble and plan.dribble.read_wait_s:
            self._alone = ReadAlone(lambda: read_everything(conn), plan.dribble.read_wait_s,
                                    idle=stop.wait)
        if plan.dribble and conn.family != socket.AF_UNIX:
            # Nagle would hold each 1-byte segment back until the previous one is ACKed.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def cut_reached(self) -> bool:
        return self.limit is not None and self._counted >= self.limit

    def cut_after(self, more: int) -> None:
        """Send only ``more`` further counted bytes (a declared reply cut part-way)."""
        self.limit = self._counted + more

    def send_head(self, data: bytes) -> None:
        """Bytes that do not count towards stop_after (an http head)."""
        self._write(data)

    def send(self, data: bytes | memoryview) -> None:
        limit = self.limit
        if limit is not None:
            data = data[:max(0, limit - self._counted)]
            self._log.cut = self._log.cut or self._counted + len(data) >= limit
        self._counted += len(data)
        self._write(data)

    def send_file(self, body: FileBody) -> None:
        fd = os.open(body.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            sent = reference.send_file(self._conn, fd, body.size, self._plan.hold_limit_s)
        finally:
            os.close(fd)
        self._log.sent += sent
        self._log.segments += 1

    def _write(self, data: bytes | memoryview) -> None:
        if not data:
            return
        dribble: Dribble | None = self._plan.dribble
        if dribble is None:
            self._conn.sendall(data)
            self._log.sent += len(data)
            self._log.segments += 1
            return
        view = memoryview(data).cast("B")
        for offset in range(0, len(view), dribble.segment_bytes):
            piece = view[offset:offset + dribble.segment_bytes]
            if self._alone is not None and self._log.segments:
                self._alone.before_next(self._log.segments)
                self._log.read_alone = self._alone.words()
            if self._stop.is_set():
                raise Stopped()
            self._conn.sendall(piece)
            self._log.sent += len(piece)
            self._log.segments += 1
            if self._stop.wait(dribble.pause_s):
                raise Stopped()


def serve_connection(conn: socket.socket, plan: Plan, log: ConnectionLog,
                     stop: threading.Event) -> None:
    """Serve one accepted connection as planned; never raises (a thread's target)."""
    try:
        conn.settimeout(plan.hold_limit_s)
        sender = Sender(conn, plan, log, stop)
        if plan.protocol is not None:
            from sockspec.adversary.declared import serve_declared  # it imports this module

            serve_declared(conn, plan, sender, log)
        elif plan.profile == "echo":
            serve_echo(conn, plan, sender, log)
        else:
            serve_http(conn, plan, sender, log)
        end_connection(conn, plan, log, stop)
    except Stopped:
        log.error = log.error or "stopped by the harness"
    except TimeoutError:
        log.error = f"the client did nothing for {plan.hold_limit_s:g} s"
    except OSError as exc:
        log.error = f"{describe_os_error(exc)} while serving"
        if log.client_end_at is None:
            log.client_end, log.client_end_at = describe_os_error(exc), time.monotonic()
    finally:
        conn.close()


def serve_echo(conn: socket.socket, plan: Plan, sender: Sender, log: ConnectionLog) -> None:
    """Echo what arrives (reference EchoSession) until the FIN, ``echo_until`` or the cut.

    Reads never go past the cut point, so input beyond it stays unread: on a Unix
    socket that turns the close into the peer's ECONNRESET.
    """
    log.request = "echo input"
    session = EchoSession()
    buffer = bytearray(ECHO_BUFFER_BYTES)
    limits = [n for n in (plan.echo_until, plan.stop_after) if n is not None]
    read_limit = min(limits) if limits else None
    with memoryview(buffer) as view:
        while read_limit is None or session.bytes_echoed < read_limit:
            room = len(buffer) if read_limit is None else min(
                len(buffer), read_limit - session.bytes_echoed)
            action = session.received(conn.recv_into(buffer, room))
            if isinstance(action, FinishWithFin):
                log.client_end, log.client_end_at = "FIN", time.monotonic()
                break
            log.received += action.size
            if plan.answer:
                sender.send(view[:action.size])


def serve_http(conn: socket.socket, plan: Plan, sender: Sender, log: ConnectionLog) -> None:
    try:
        event = reference.read_request(conn, plan.hold_limit_s)
    except TimeoutError:
        log.request = "no complete request head"
        raise
    if isinstance(event, http.ConnectionClosed):
        log.request = "closed before sending a request"
        log.client_end, log.client_end_at = "FIN", time.monotonic()
        return
    if isinstance(event, http.ParseError):
        log.request = f"a malformed request ({event.reason})"
        sender.send_head(http.error_response(event.status))
        return
    log.request = f"{event.method} {event.target} {event.version}"
    if event.target != plan.url_path:
        log.error = f"the client asked for {event.target}, not {plan.url_path}: answered 404"
        sender.send_head(http.error_response(404))
        return
    if not plan.answer:
        return
    size = plan.body_size
    sender.send_head(http.response_head(size) if plan.announce_length else head_without_length())
    if isinstance(plan.body, FileBody):
        sender.send_file(plan.body)
    else:
        sender.send(plan.body)


def end_connection(conn: socket.socket, plan: Plan, log: ConnectionLog,
                   stop: threading.Event) -> None:
    ending = plan.ending
    if ending is Ending.CLOSE:
        log.ending, log.fin_at = "FIN (then drained the client's input)", time.monotonic()
        reference.close_gracefully(conn, reference.ServeConfig(plan.profile, None,
                                                               plan.hold_limit_s))
    elif ending is Ending.RESET:
        reset(conn, log)
    elif ending is Ending.HALF_CLOSE_AND_WAIT:
        conn.shutdown(socket.SHUT_WR)
        log.ending, log.fin_at = "FIN by shutdown(SHUT_WR), still reading", time.monotonic()
        await_client_end(conn, plan, log, stop)
    else:
        log.ending = "nothing: no answer, no FIN, connection held open"
        await_client_end(conn, plan, log, stop)
        if log.client_end == "FIN" and not stop.is_set():
            # The client half-closed but may still be waiting for an answer: keep holding.
            stop.wait(max(0.0, log.client_end_at + plan.hold_limit_s - time.monotonic()))


def reset(conn: socket.socket, log: ConnectionLog) -> None:
    log.fin_at = time.monotonic()
    if conn.family == socket.AF_UNIX:
        unread = unread_bytes(conn)
        log.ending = (f"close() with {unread} unread input bytes (the client's recv() "
                      f"fails with ECONNRESET)" if unread else
                      "close() with no unread input (a Unix socket cannot reset: the client "
                      "sees FIN)")
        conn.close()
    else:
        log.ending = "RST (SO_LINGER 0, close)"
        abort(conn)


def unread_bytes(conn: socket.socket) -> int:
    """Bytes waiting in the receive queue: ioctl(FIONREAD)."""
    try:
        raw = fcntl.ioctl(conn.fileno(), termios.FIONREAD, struct.pack("i", 0))
    except OSError:
        return 0
    return struct.unpack("i", raw)[0]


def await_client_end(conn: socket.socket, plan: Plan, log: ConnectionLog,
                     stop: threading.Event) -> None:
    """Read and discard until the client's FIN or RST, the hold limit, or stop."""
    if log.client_end:
        return
    deadline = time.monotonic() + plan.hold_limit_s
    scratch = bytearray(64 * 1024)
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            log.client_end = f"nothing: still open after {plan.hold_limit_s:g} s"
            return
        conn.settimeout(min(remaining, 0.2))
        try:
            count = conn.recv_into(scratch)
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            log.client_end, log.client_end_at = "RST", time.monotonic()
            return
        if count == 0:
            if not stop.is_set():
                log.client_end, log.client_end_at = "FIN", time.monotonic()
            return
        log.received += count
