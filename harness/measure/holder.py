"""One load generator's concurrent connections: connect, verify one echo each, hold, release.

A single-threaded epoll loop like shared/bench/holdconns.c: non-blocking
connect()s with at most ``inflight`` connections unverified at a time (so the
server's accept queue is not overrun), then one 8-byte echo per connection
whose token is the connection's global index (so a server mixing up
connections is caught). Source addresses are bound with IP_BIND_ADDRESS_NO_PORT
so the kernel still picks the port per 4-tuple at connect() (each (source,
destination) pair has its own 28232 ports). Connections are then held open
until ``release()``, which closes them with RST (SO_LINGER 0) so a test leaves
no TIME_WAIT sockets behind. sockspec.measure.concurrent runs several of these.
"""

from __future__ import annotations

import errno
import select
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from sockspec.measure.plan import ImpossibleLoad, check_positive, source_for
from sockspec.measure.sockets import (
    IP_BIND_ADDRESS_NO_PORT,
    RST_LINGER,
    ensure_fd_room,
    errno_failure,
    failure_name,
    resolve_destination,
)

TOKEN_BYTES = 8


def token_for(index: int) -> bytes:
    """The 8 bytes connection ``index`` sends: its number in hex, so a server that mixes
    up connections is caught; printable, so only the token's own family of defects
    (not NUL handling, judged by binary-integrity) can spoil it."""
    return b"%08x" % (index & 0xFFFFFFFF)

CONNECTING, ECHOING, HELD, FAILED = 1, 2, 3, 4
UNIX_RETRY_PAUSE_S = 0.005  # a full Unix accept queue fails connect() at once with EAGAIN


@dataclass(frozen=True)
class HoldRequest:
    destinations: tuple[str, ...]        # "tcp:HOST:PORT" / "unix:PATH"; index i -> i % len
    count: int
    first_index: int = 0                 # global index of this generator's first connection
    sources: tuple[str, ...] = ()        # source addresses to bind (plan.source_for)
    inflight: int = 1000
    timeout_s: float = 30.0              # deadline for the whole setup and echo
    verify_echo: bool = True
    # A declared protocol's request and the reply it expects, the same on every
    # connection; empty: each connection's echo token (token_for).
    message: bytes = b""
    reply: bytes = b""

    def validate(self) -> None:
        if not self.destinations:
            raise ImpossibleLoad("at least one destination is needed")
        if self.count < 1:
            raise ImpossibleLoad(f"connection count must be at least 1, not {self.count}")
        if self.inflight < 1:
            raise ImpossibleLoad(f"in-flight connects must be at least 1, not {self.inflight}")
        if bool(self.message) != bool(self.reply):
            raise ImpossibleLoad("a request needs its reply (message and reply, or neither)")
        check_positive("timeout (seconds)", self.timeout_s)


@dataclass
class HoldResult:
    requested: int
    established: int = 0
    verified: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    first_failure: str | None = None
    connect_s: float = 0.0               # until the last connect() completed
    setup_s: float = 0.0                 # until every connection was verified (or failed)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def to_wire(self) -> dict:
        return asdict(self)

    @classmethod
    def from_wire(cls, data: dict) -> HoldResult:
        return cls(**data)


def merge_results(results: Sequence[HoldResult]) -> HoldResult:
    merged = HoldResult(requested=sum(r.requested for r in results))
    for result in results:
        merged.established += result.established
        merged.verified += result.verified
        for name, count in result.failures.items():
            merged.failures[name] = merged.failures.get(name, 0) + count
        merged.first_failure = merged.first_failure or result.first_failure
        merged.connect_s = max(merged.connect_s, result.connect_s)
        merged.setup_s = max(merged.setup_s, result.setup_s)
    return merged


class ConnectionHolder:
    """One generator's connections: ``open_all()``, then ``release()`` (always)."""

    def __init__(self, request: HoldRequest) -> None:
        request.validate()
        self.request = request
        self.targets = [resolve_destination(d) for d in request.destinations]
        ensure_fd_room(request.count)
        self._socks: list[socket.socket | None] = [None] * request.count
        self._state = bytearray(request.count)
        self._partial: dict[int, bytes] = {}   # token bytes received so far, if split

    def open_all(self) -> HoldResult:
        """Connect all, echo once on each; failures are counted, never raised."""
        request = self.request
        count, first = request.count, request.first_index
        # Address objects compute family/sockaddr on each access: look them up once.
        families = [t.family for t in self.targets]
        sockaddrs = [t.sockaddr for t in self.targets]
        ndst = len(sockaddrs)
        socks, state, sources = self._socks, self._state, request.sources
        result = HoldResult(requested=count)
        by_fd: dict[int, int] = {}
        retry: deque[int] = deque()
        awaiting: deque[int] = deque()  # token sent, echo not yet looked for
        epoll = select.epoll(min(count, 65536))
        clock = time.perf_counter
        started = clock()
        deadline = started + request.timeout_s
        next_new = pending = finished = 0
        verify = request.verify_echo
        stream = socket.SOCK_STREAM | socket.SOCK_NONBLOCK

        def fail(index: int, name: str, detail: str) -> None:
            nonlocal finished, pending
            result.failures[name] = result.failures.get(name, 0) + 1
            if result.first_failure is None:
                result.first_failure = f"connection {first + index}: {name} ({detail})"
            if state[index] in (CONNECTING, ECHOING):
                pending -= 1
            state[index] = FAILED
            sock = socks[index]
            if sock is not None:
                by_fd.pop(sock.fileno(), None)
                sock.close()
                socks[index] = None
            finished += 1

        def established(index: int, sock: socket.socket, fd: int, registered: bool) -> None:
            nonlocal finished, pending
            result.established += 1
            if not verify:
                state[index] = HELD
                pending -= 1
                finished += 1
                if registered:
                    epoll.unregister(fd)
                return
            state[index] = ECHOING
            if registered:
                epoll.modify(fd, select.EPOLLIN)
            else:
                awaiting.append(index)  # try its recv later, without epoll: usually ready

        try:
            while finished < count and clock() < deadline:
                # "pending" = started, not yet verified: it bounds the server's accept queue.
                while pending < request.inflight and (retry or next_new < count):
                    index = retry.popleft() if retry else next_new
                    if index == next_new:
                        next_new += 1
                    where = (first + index) % ndst
                    try:
                        sock = socket.socket(families[where], stream)
                    except OSError as exc:
                        fail(index, failure_name(exc), "socket()")
                        continue
                    if sources:
                        try:
                            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                            sock.bind((source_for(first + index, ndst, sources), 0))
                        except OSError as exc:
                            sock.close()
                            fail(index, failure_name(exc), "bind() of the source address")
                            continue
                    code = sock.connect_ex(sockaddrs[where])
                    if code == errno.EAGAIN and families[where] == socket.AF_UNIX:
                        sock.close()
                        retry.append(index)
                        time.sleep(UNIX_RETRY_PAUSE_S)
                        break
                    socks[index] = sock
                    state[index] = CONNECTING
                    pending += 1
                    if code not in (0, errno.EINPROGRESS):
                        fail(index, errno_failure(code), f"connect() to {self.targets[where]}")
                        continue
                    fd = sock.fileno()
                    by_fd[fd] = index
                    if verify:
                        # Over loopback the handshake usually completes inside connect():
                        # send the token at once; EAGAIN means it is still in SYN_SENT.
                        try:
                            sock.send(self._message(first + index))
                        except BlockingIOError:
                            epoll.register(fd, select.EPOLLOUT)
                            continue
                        except OSError as exc:
                            fail(index, failure_name(exc), f"connect() to {self.targets[where]}")
                            continue
                        established(index, sock, fd, registered=False)
                    else:
                        epoll.register(fd, select.EPOLLOUT)
                # Over loopback most echoes are back by now: a recv() each is cheaper than
                # epoll_ctl(ADD) + epoll_wait + epoll_ctl(DEL); the rest go to epoll.
                while awaiting:
                    index = awaiting.popleft()
                    verdict = self._check_echo(index, epoll, result, fail, registered=False)
                    if verdict is None:
                        epoll.register(socks[index].fileno(), select.EPOLLIN)
                    elif verdict:
                        pending -= 1
                        finished += 1
                if finished >= count:
                    break
                can_start = pending < request.inflight and (retry or next_new < count)
                for fd, _events in epoll.poll(0 if can_start else 0.1, 1024):
                    index = by_fd[fd]
                    sock = socks[index]
                    if state[index] == CONNECTING:
                        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if code:
                            where = self.targets[(first + index) % ndst]
                            fail(index, errno_failure(code), f"connect() to {where}")
                            continue
                        if verify:
                            try:
                                sock.send(self._message(first + index))
                            except OSError as exc:
                                fail(index, failure_name(exc), "send() of the echo token")
                                continue
                        established(index, sock, fd, registered=True)
                    elif self._check_echo(index, epoll, result, fail, registered=True):
                        pending -= 1
                        finished += 1
                if result.established + result.failed == count and not result.connect_s:
                    result.connect_s = clock() - started
        finally:
            epoll.close()
        for index in range(count):
            if state[index] in (0, CONNECTING, ECHOING):
                stage = {0: "not started", CONNECTING: "connect()",
                         ECHOING: "echo"}[state[index]]
                fail(index, "timeout", f"{stage} not complete within {request.timeout_s:g} s")
        result.connect_s = result.connect_s or clock() - started
        result.setup_s = clock() - started
        return result

    def _check_echo(self, index: int, epoll: select.epoll, result: HoldResult,
                    fail: Callable[[int, str, str], None], *, registered: bool) -> bool | None:
        """Read the echoed token: True once complete and right (the connection is held),
        False if it failed, None if more is to come (register it for EPOLLIN).

        The token usually arrives in one segment, but a server may echo it in pieces.
        """
        sock = self._socks[index]
        token = self.request.reply or token_for(self.request.first_index + index)
        so_far = self._partial.pop(index, b"")
        try:
            data = so_far + sock.recv(len(token) - len(so_far))
        except BlockingIOError:
            if so_far:
                self._partial[index] = so_far
            return False if registered else None
        except OSError as exc:
            fail(index, failure_name(exc), "recv() of the echo")
            return False
        if data and data == token[:len(data)] and len(data) < len(token):
            self._partial[index] = data
            return False if registered else None
        if registered:
            epoll.unregister(sock.fileno())
        if data == token:
            self._state[index] = HELD
            result.verified += 1
            return True
        if not data:
            fail(index, "EOF", "the server closed the connection before echoing")
        else:
            fail(index, "mismatch", f"echo {data!r} != token {token!r}")
        return False

    def _message(self, index: int) -> bytes:
        return self.request.message or token_for(index)

    def held(self) -> int:
        return sum(1 for s in self._socks if s is not None)

    def release(self) -> None:
        """Close every connection with RST (SO_LINGER 0): no TIME_WAIT left behind."""
        for index, sock in enumerate(self._socks):
            if sock is not None:
                try:
                    if sock.family != socket.AF_UNIX:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST_LINGER)
                except OSError:
                    pass
                sock.close()
                self._socks[index] = None
