"""The connection-rate loop compiled with numba (optional, like native_loop).

A loopback connect/echo/close costs ~70 µs of system calls; CPython adds ~4 µs
of its own per connection (object creation, method calls, GIL hand-offs),
enough to make the client, not the server, the limit. Compiled, the loop makes
the calls shared/bench/crr makes plus the two timeouts every connection needs.

Same rules as ``connrate._run_python``: each connection timed from socket() to
close(), SO_RCVTIMEO/SO_SNDTIMEO bound connect() and every read and write,
the echo compared, close by FIN or by RST. A failure, a signal (EINTR) or a
full sample array returns to Python with the state kept; Python counts the
failure by errno name, lets signal handlers run, and calls again. A connection
interrupted by a signal carries on where it was (connect() called again on a
blocking socket waits for the handshake under way).
"""

from __future__ import annotations

import errno
import functools
import os
import socket
import struct
from dataclasses import dataclass

from sockspec.measure.native_loop import END_OF_FILE_ERROR, libc_calls, native_io
from sockspec.measure.sockets import errno_failure
from sockspec.transport import Address, TcpAddress

# State shared with the compiled loop (int64 slots), so an interrupted call resumes.
FILLED, ATTEMPTED, STATUS, ERRNO, STAGE, GOT, FD, PHASE, SENT, BEGAN_NS = range(10)
STATE_SLOTS = 10
# STATUS values
DONE, FULL, FAILED, INTERRUPTED = range(1, 5)
# PHASE of the connection in hand (IDLE: none open)
IDLE, CONNECTING, EXCHANGING = range(3)
# STAGE of a failure
SOCKET, CONNECT, SEND, RECV, END_OF_FILE, MISMATCH = range(6)
STAGES = ("socket()", "connect()", "send()", "recv() of the echo", "recv() of the echo",
          "the echo")
SAMPLES_PER_CALL = 65_536


@dataclass(frozen=True)
class ConnectionFailure:
    name: str          # errno name, "timeout", "EOF" or "mismatch" (as connrate counts them)
    detail: str


@dataclass
class NativeConnRate:
    samples_ns: list[int]
    attempted: int
    failures: list[tuple[int, ConnectionFailure]]   # (connection number, failure)


def raw_sockaddr(address: Address) -> tuple[int, bytes]:
    """(family, struct sockaddr bytes) for connect(2) called from compiled code."""
    if isinstance(address, TcpAddress):
        family, _, _, _, sockaddr = socket.getaddrinfo(
            address.host, address.port, address.family, socket.SOCK_STREAM)[0]
        header = struct.pack("=H", family) + struct.pack("!H", sockaddr[1])
        packed = socket.inet_pton(family, sockaddr[0])
        if family == socket.AF_INET:
            return family, header + packed + bytes(8)
        return family, header + struct.pack("=I", 0) + packed + struct.pack("=I", sockaddr[3])
    path = os.fsencode(address.sockaddr)
    return socket.AF_UNIX, struct.pack("=H", socket.AF_UNIX) + path + b"\0"


def run_native_connection_rate(address: Address, payload: bytes, timeout_s: float,
                               nodelay: bool, close_with_reset: bool, end_ns: int,
                               max_connections: int, max_failures: int,
                               reply: bytes | None = None) -> NativeConnRate:
    """Connections until ``end_ns`` (CLOCK_MONOTONIC), ``max_connections`` attempts or
    ``max_failures`` failures, whichever comes first. Each sends ``payload`` and expects
    ``reply`` (default: the payload, an echo)."""
    reply = payload if reply is None else reply
    import numpy as np

    loop = compile_native_connrate()
    family, sockaddr = raw_sockaddr(address)
    raw_address = np.frombuffer(sockaddr, dtype=np.uint8).copy()
    timeval = np.array([int(timeout_s), int(timeout_s % 1 * 1e6)], dtype=np.int64)
    sent = np.frombuffer(payload, dtype=np.uint8).copy()
    expected = np.frombuffer(reply, dtype=np.uint8).copy()
    received = np.zeros(len(reply), dtype=np.uint8)
    samples = np.zeros(min(max_connections, SAMPLES_PER_CALL), dtype=np.int64)
    state = np.zeros(STATE_SLOTS, dtype=np.int64)
    state[FD] = -1
    scratch = np.zeros(2, dtype=np.int64)
    collected: list[int] = []
    failures: list[tuple[int, ConnectionFailure]] = []
    try:
        while True:
            loop(family, raw_address, int(nodelay), int(close_with_reset), timeval, sent,
                 expected, received, samples, end_ns, max_connections, state, scratch)
            collected.extend(samples[:state[FILLED]].tolist())
            status = state[STATUS]
            if status == FAILED:
                failures.append((int(state[ATTEMPTED]), _failure(
                    int(state[STAGE]), int(state[ERRNO]), int(state[GOT]), len(reply))))
                if len(failures) >= max_failures:
                    break
            elif status == DONE:
                break
            # FULL, INTERRUPTED, or FAILED below the limit: back in Python for a moment
            # (pending signal handlers run here, and may raise), then on.
    finally:
        if state[FD] >= 0:  # a handler raised while a connection was in hand
            os.close(int(state[FD]))
    return NativeConnRate(collected, int(state[ATTEMPTED]), failures)


def _failure(stage: int, error: int, got: int, size: int) -> ConnectionFailure:
    if stage == END_OF_FILE:
        return ConnectionFailure("EOF", f"peer closed before the echo: {got} of {size} bytes")
    if stage == MISMATCH:
        return ConnectionFailure("mismatch", f"echo differs from the payload: {got} of "
                                             f"{size} bytes")
    return ConnectionFailure(errno_failure(error), f"{STAGES[stage]}: {os.strerror(error)}")


@functools.cache
def compile_native_connrate():
    """Compile once per process, on a loop that does nothing, so no compile time is timed."""
    import numpy as np
    from numba import njit

    io = native_io()
    now_ns, last_errno, exchange, differs = io.now_ns, io.last_errno, io.exchange, io.differs
    libc = libc_calls()
    c_socket, c_setsockopt, c_connect, c_close = libc.socket, libc.setsockopt, libc.connect, \
        libc.close
    stream = socket.SOCK_STREAM | socket.SOCK_CLOEXEC
    sol_socket, rcvtimeo, sndtimeo, linger = (socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                                              socket.SO_SNDTIMEO, socket.SO_LINGER)
    ipproto_tcp, tcp_nodelay = socket.IPPROTO_TCP, socket.TCP_NODELAY
    eintr, eisconn = errno.EINTR, errno.EISCONN
    end_of_file, mismatch = END_OF_FILE_ERROR, -2   # in place of an errno

    @njit(nogil=True)
    def save(state, filled, attempted, fd, phase, sent, got, began, status, stage, error):
        state[FILLED], state[ATTEMPTED], state[FD], state[PHASE] = filled, attempted, fd, phase
        state[SENT], state[GOT], state[BEGAN_NS] = sent, got, began
        state[STATUS], state[STAGE], state[ERRNO] = status, stage, error

    @njit(nogil=True)
    def loop(family, sockaddr, nodelay, reset, timeval, payload, expected, received, samples,
             end_ns, max_connections, state, scratch):
        attempted, fd, phase = state[ATTEMPTED], state[FD], state[PHASE]
        sent, got, began = state[SENT], state[GOT], state[BEGAN_NS]
        filled, size = 0, payload.size
        one = np.ones(1, dtype=np.int32)
        no_linger = np.array([1, 0], dtype=np.int32)
        while True:
            if phase == IDLE:
                began = now_ns(scratch)
                if began >= end_ns or attempted >= max_connections:
                    save(state, filled, attempted, -1, IDLE, 0, 0, 0, DONE, 0, 0)
                    return
                if filled == samples.size:
                    save(state, filled, attempted, -1, IDLE, 0, 0, 0, FULL, 0, 0)
                    return
                attempted += 1
                fd = c_socket(family, stream, 0)
                if fd < 0:
                    save(state, filled, attempted, -1, IDLE, 0, 0, 0, FAILED, SOCKET,
                         last_errno())
                    return
                c_setsockopt(fd, sol_socket, rcvtimeo, timeval.ctypes, 16)
                c_setsockopt(fd, sol_socket, sndtimeo, timeval.ctypes, 16)
                phase, sent, got = CONNECTING, 0, 0
            error = 0
            if phase == CONNECTING:
                if c_connect(fd, sockaddr.ctypes, sockaddr.size) < 0:
                    error = last_errno()
                    if error == eisconn:  # a resumed connect() that completed meanwhile
                        error = 0
                if error == 0:
                    phase = EXCHANGING
                    if nodelay:
                        c_setsockopt(fd, ipproto_tcp, tcp_nodelay, one.ctypes, 4)
            if phase == EXCHANGING:
                sent, got, error = exchange(fd, payload, received, sent, got)
            if error == eintr:
                save(state, filled, attempted, fd, phase, sent, got, began, INTERRUPTED, 0,
                     error)
                return
            stage = CONNECT if phase == CONNECTING else SEND if sent < size else RECV
            if error == end_of_file:
                stage = END_OF_FILE
            elif error == 0 and differs(received, expected):
                stage, error = MISMATCH, mismatch
            if error:
                c_close(fd)
                save(state, filled, attempted, -1, IDLE, 0, got, 0, FAILED, stage,
                     max(error, 0))
                return
            if reset:
                c_setsockopt(fd, sol_socket, linger, no_linger.ctypes, 8)
            c_close(fd)
            samples[filled] = max(now_ns(scratch) - began, 1)
            filled, phase = filled + 1, IDLE

    no_bytes = np.zeros(1, dtype=np.uint8)
    state = np.zeros(STATE_SLOTS, dtype=np.int64)
    state[FD] = -1
    loop(socket.AF_INET, np.zeros(16, dtype=np.uint8), 0, 0, np.zeros(2, dtype=np.int64),
         no_bytes, no_bytes, no_bytes, np.zeros(1, dtype=np.int64), 0, 0, state,
         np.zeros(2, dtype=np.int64))
    return loop
