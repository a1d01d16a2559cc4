"""Load and abuse: many connections in a row, connection bursts, clients that leave badly.

The client side of the robustness families (client-abort, restart, backlog,
fd-leak, sustained-load, slow-client-isolation): one short exchange per
connection, repeated; the ways a client can end a connection (FIN without a
word, RST via SO_LINGER {1, 0}, vanishing mid-download); a burst of
non-blocking connects; a sender that fills every buffer between it and a
server that echoes; and bounded waits on a number the server exposes (its
descriptor count). Every wait takes a timeout from the caller.
"""

from __future__ import annotations

import errno
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sockspec.drivers.peer import queued_on, unsent_on
from sockspec.drivers.streams import parse_small_response
from sockspec.errors import HarnessError, SockspecError
from sockspec.protocol.conversation import first_exchange
from sockspec.reference.client import build_get_request, fetch, host_header
from sockspec.targets import PROFILES
from sockspec.transport import (
    Address,
    TcpAddress,
    abort,
    connect,
    describe_os_error,
    read_until_end,
    recv_exactly,
    send_all,
)
from sockspec.under_test.server import ServerUnderTest

POLL_INTERVAL_S = 0.02
# Payload bytes for fills: printable, no NUL/CR/LF, so only the amount matters.
FILL_CHUNK = b"sockspec-fill/" * (256 * 1024 // 14)
PROBE_PAYLOAD = b"sockspec probe: still serving?\n"
PROBE_FILE = "sockspec-probe.txt"
PROBE_BODY = b"sockspec probe body: still serving?\n" * 8


# ------------------------------------------------------------ is it serving?


@dataclass(frozen=True)
class Probe:
    """One fresh request and what came of it."""

    ok: bool
    detail: str        # one line: what was sent, what came back, how it ended
    elapsed_s: float


def probe_service(server: ServerUnderTest, timeout: float) -> Probe:
    """One fresh request suited to the profile: a short echo, or a GET of a small file.

    Both read exactly the answer and then close, without a half-close and
    without waiting for the server's FIN: how a server ends the stream is
    other families' business.
    """
    started = time.perf_counter()
    try:
        if server.profile not in PROFILES:
            ok, detail = first_exchange(server.protocol, server.address, timeout)
        elif server.profile == "echo":
            echo_then_close(server.address, PROBE_PAYLOAD, timeout)
            ok, detail = True, f"echo of {len(PROBE_PAYLOAD)} bytes came back"
        else:
            server.put_file(PROBE_FILE, PROBE_BODY)
            response = fetch(server.address, f"/{PROBE_FILE}", timeout=timeout,
                             await_close=False)
            ok = response.status == 200 and response.body_first_bytes == PROBE_BODY
            detail = f"GET /{PROBE_FILE}: {response.describe()}"
    except HarnessError:
        raise  # the harness could not prepare the probe: not the server's failure
    except SockspecError as exc:
        ok, detail = False, str(exc)
    return Probe(ok, detail, time.perf_counter() - started)


# ------------------------------------------------------- one connection each


def unfinished_get_request(path: str, host: str) -> bytes:
    """A GET request head without its final blank line: the server must wait for more."""
    return build_get_request(path, host=host)[:-2]


def echo_then_close(address: Address, payload: bytes, timeout: float) -> None:
    """Connect, send ``payload``, read exactly its echo, close (our FIN comes first)."""
    with connect(address, timeout) as sock:
        send_all(sock, payload)
        echoed = recv_exactly(sock, len(payload))
    if echoed != payload:
        raise SockspecError(f"echo of {len(payload)} bytes came back different")


def echo_then_reset(address: Address, payload: bytes, timeout: float) -> None:
    """Connect, one echo, then close with RST (SO_LINGER {1, 0}) while the server reads."""
    sock = connect(address, timeout)
    try:
        send_all(sock, payload)
        recv_exactly(sock, len(payload))
    finally:
        abort(sock)


def close_without_sending(address: Address, timeout: float) -> None:
    """Connect and close at once: the server's first recv() returns 0."""
    connect(address, timeout).close()


def get_then_close(address: Address, path: str, body: bytes, timeout: float) -> None:
    """GET ``path`` with HTTP/1.0 (and Host), read to EOF, insist on 200 and ``body``."""
    with connect(address, timeout) as sock:
        send_all(sock, build_get_request(path, host=host_header(address)))
        data, end = read_until_end(sock, timeout, limit=len(body) + 64 * 1024)
    response = parse_small_response(data)
    if response.head is None or response.head.status != 200 or response.body != body:
        raise SockspecError(f"GET {path}: {response.status_line}, {len(response.body)} body "
                            f"bytes where {len(body)} were expected, ended by {end.value}")


def reset_mid_request(address: Address, timeout: float) -> None:
    """Send half a request head (the request line and Host, no blank line), then RST:
    the server's next recv() fails."""
    sock = connect(address, timeout)
    try:
        send_all(sock, unfinished_get_request("/never-finished", host_header(address)))
    finally:
        abort(sock)


@dataclass(frozen=True)
class SequentialRun:
    """A run of connections made one after another."""

    planned: int
    completed: int
    elapsed_s: float
    failure: str | None = None      # "connection #N: reason" for the first failed one
    stopped_early: str | None = None  # why the run ended before ``planned`` (time budget)

    @property
    def per_second(self) -> float:
        return self.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0


def run_in_sequence(
    count: int,
    one: Callable[[int], None],
    *,
    time_limit: float,
    judge_rate_after: float | None = None,
) -> SequentialRun:
    """Call ``one(i)`` for i in 0..count-1 until a SockspecError/OSError or the time limit.

    With ``judge_rate_after`` the run also stops once that many seconds have
    passed and the rate so far cannot finish ``count`` within ``time_limit``.
    """
    started = time.perf_counter()
    for index in range(count):
        elapsed = time.perf_counter() - started
        if elapsed > time_limit or (
            judge_rate_after is not None and index and elapsed > judge_rate_after
            and elapsed / index * count > time_limit
        ):
            rate = index / elapsed
            return SequentialRun(count, index, elapsed, stopped_early=(
                f"{index} of {count} connections in {elapsed:.1f} s ({rate:.0f}/s): the "
                f"rest would not fit in the {time_limit:g} s budget"))
        try:
            one(index)
        except (SockspecError, OSError) as exc:
            reason = str(exc) if isinstance(exc, SockspecError) else describe_os_error(exc)
            return SequentialRun(count, index, time.perf_counter() - started,
                            failure=f"connection #{index + 1}: {reason}")
    return SequentialRun(count, count, time.perf_counter() - started)


# ---------------------------------------------------------- filling buffers


@dataclass(frozen=True)
class Fill:
    sent: int
    blocked: bool        # the peer took nothing more for ``stall_s``: every buffer is full
    elapsed_s: float
    error: str | None    # the send failed (peer closed or reset)


def fill_until_blocked(
    sock: socket.socket, *, max_bytes: int, stall_s: float, time_limit: float
) -> Fill:
    """Send without reading until the peer stops taking bytes, ``max_bytes``, or the limit.

    Against an echo server that does not buffer without bound this fills our
    receive buffer and its send buffer, so its send() blocks, then its receive
    buffer and our send buffer. The socket's timeout is restored afterwards.
    """
    previous_timeout = sock.gettimeout()
    sock.setblocking(False)
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLOUT)
    started = time.perf_counter()
    sent, blocked, error = 0, False, None
    view = memoryview(FILL_CHUNK)
    try:
        while sent < max_bytes and time.perf_counter() - started < time_limit:
            try:
                sent += sock.send(view[: min(len(view), max_bytes - sent)])
            except BlockingIOError:
                if not poller.poll(stall_s * 1000):
                    blocked = True
                    break
            except OSError as exc:
                error = describe_os_error(exc)
                break
    finally:
        sock.settimeout(previous_timeout)
    return Fill(sent, blocked, time.perf_counter() - started, error)


def wait_until_still(sock: socket.socket, still_s: float, limit_s: float) -> bool:
    """After a fill: wait until the peer neither sends to us nor takes our bytes for
    ``still_s`` (our receive queue and our unsent bytes the same size, FIONREAD and
    SIOCOUTQ), at most ``limit_s``; whether it did.

    A fill ends when our send() has found no room for its stall time. That says
    the peer stopped reading, not that its send() to us is blocked: a busy peer
    (not scheduled for a moment, or still writing replies it owes) may yet be
    sending. Once both queues stand still, a peer with requests left to answer is
    blocked in send() to us, which is what slow-client-isolation needs before its
    second client comes."""
    deadline = time.perf_counter() + limit_s
    last = (queued_on(sock), unsent_on(sock))
    since = time.perf_counter()
    while (now := time.perf_counter()) < deadline:
        if now - since >= still_s:
            return True
        time.sleep(min(still_s / 10, deadline - now))
        sizes = (queued_on(sock), unsent_on(sock))
        if sizes != last:
            last, since = sizes, time.perf_counter()
    return False


# ---------------------------------------------------------- connect bursts


@dataclass(frozen=True)
class ConnectBurst:
    attempted: int
    completed: int                 # handshakes done (SO_ERROR 0)
    pending: int                   # still connecting when the window closed
    failed: dict[str, int] = field(default_factory=dict)  # errno name -> count
    waited_s: float = 0.0


def connect_burst(address: Address, count: int, window: float) -> ConnectBurst:
    """Start ``count`` non-blocking connects at once; count handshakes done within ``window``.

    A completed TCP handshake needs no accept(): the kernel queues it. Every
    socket is closed before returning.
    """
    sockets: list[socket.socket] = []
    failed: dict[str, int] = {}
    completed = 0
    pending: dict[int, socket.socket] = {}
    poller = select.poll()
    started = time.perf_counter()
    try:
        for _ in range(count):
            sock = socket.socket(address.family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setblocking(False)
            code = sock.connect_ex(address.sockaddr)
            if code == 0:
                completed += 1
            elif code in (errno.EINPROGRESS, errno.EAGAIN) and isinstance(address, TcpAddress):
                pending[sock.fileno()] = sock
                poller.register(sock.fileno(), select.POLLOUT)
            else:
                name = errno.errorcode.get(code, str(code))
                failed[name] = failed.get(name, 0) + 1
        deadline = started + window
        while pending and (remaining := deadline - time.perf_counter()) > 0:
            for fd, _ in poller.poll(remaining * 1000):
                sock = pending.pop(fd)
                poller.unregister(fd)
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code == 0:
                    completed += 1
                else:
                    name = errno.errorcode.get(code, str(code))
                    failed[name] = failed.get(name, 0) + 1
    finally:
        for sock in sockets:
            sock.close()
    return ConnectBurst(count, completed, len(pending), failed, time.perf_counter() - started)


# ------------------------------------------------------------ settling


@dataclass(frozen=True)
class Settled:
    value: int
    how: str          # "reached" (<= at_most), "stable" (unchanged), or "timeout"
    waited_s: float


def settle_count(
    read: Callable[[], int], *, at_most: int | None, stable_for: float, timeout: float
) -> Settled:
    """Poll ``read()`` until it is <= ``at_most``, unchanged for ``stable_for`` s, or ``timeout``."""
    started = time.perf_counter()
    value = read()
    since = started
    while True:
        now = time.perf_counter()
        if at_most is not None and value <= at_most:
            return Settled(value, "reached", now - started)
        if now - since >= stable_for:
            return Settled(value, "stable", now - started)
        if now - started >= timeout:
            return Settled(value, "timeout", now - started)
        time.sleep(POLL_INTERVAL_S)
        current = read()
        if current != value:
            value, since = current, time.perf_counter()


# ------------------------------------------------------- the kernel's view

# /proc/net/tcp "st" column (include/net/tcp_states.h).
TCP_STATE_NAMES = {
    "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
    "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
    "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING", "0C": "NEW_SYN_RECV",
}


def tcp_states_on_port(port: int) -> dict[str, int]:
    """How many TCP sockets with local port ``port`` are in each state, from /proc/net/tcp{,6}."""
    states: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rpartition(":")[2], 16) == port:
                name = TCP_STATE_NAMES.get(fields[3], fields[3])
                states[name] = states.get(name, 0) + 1
    return states
