"""The closed ping-pong loop compiled to machine code with numba (optional).

A CPython client spends ~0.4 µs per round trip on interpreted calls and GIL
hand-offs around its two system calls: 7-10 % of a pinned 5 µs loopback round
trip, which no pure-Python loop can remove (BENCHMARKS.md). Compiled, the loop
makes the same write/read/clock_gettime calls as a C client and nothing else.
numba compiles it from Python at run time, so no C compiler is needed:
``pip install 'sockspec[native]'``.

Same rules as ``latency._closed_loop``: time from before the first write to
after the last byte of the reply, short writes and reads finished, every reply
compared, the time budget checked outside the timed span. A signal interrupts
the loop (EINTR) and returns to Python, so handlers run (Ctrl-C works); the
wrapper then resumes the round trip in flight.
"""

from __future__ import annotations

import array
import ctypes
import errno
import functools
import importlib.util
from dataclasses import dataclass

CLOCK_MONOTONIC = 1   # time.perf_counter_ns's clock on Linux, so budgets compare

# State shared with the compiled loop (int64 slots), so an interrupted call resumes.
INDEX, SENT, GOT, STARTED_NS, MISMATCHED, STATUS, ERRNO = range(7)
STATE_SLOTS = 7
# STATUS values
DONE, BUDGET, FAILED, EOF, INTERRUPTED = range(1, 6)


def native_available() -> bool:
    return importlib.util.find_spec("numba") is not None


@dataclass(frozen=True)
class NativeRun:
    reached: int                  # round trips completed (recorded in rtt[:reached])
    mismatched: int
    errno: int = 0                # a failed write or read, else 0
    eof_after_bytes: int | None = None   # the peer closed after this many reply bytes


def run_closed_loop(fd: int, message: bytes, reply: bytes, rtt: array.array, total: int,
                    stop_ns: int) -> NativeRun:
    """Round trips 0..total-1 on blocking ``fd``, samples into ``rtt`` (int64)."""
    import numpy as np

    loop = compile_native_loop()
    sent = np.frombuffer(message, dtype=np.uint8).copy()
    expected = np.frombuffer(reply, dtype=np.uint8).copy()
    received = np.zeros(len(reply), dtype=np.uint8)
    samples = np.frombuffer(rtt, dtype=np.int64)[:total]
    state = np.zeros(STATE_SLOTS, dtype=np.int64)
    clock = np.zeros(2, dtype=np.int64)
    while True:
        loop(fd, sent, expected, received, samples, stop_ns, state, clock)
        if state[STATUS] != INTERRUPTED:
            break
        # Back in Python for a moment: pending signal handlers run here (and may raise).
    reached, mismatched = int(state[INDEX]), int(state[MISMATCHED])
    if state[STATUS] == FAILED:
        return NativeRun(reached, mismatched, errno=int(state[ERRNO]))
    if state[STATUS] == EOF:
        return NativeRun(reached, mismatched, eof_after_bytes=int(state[GOT]))
    return NativeRun(reached, mismatched)


@functools.cache
def compile_native_loop():
    """Compile once per process (~0.3 s); numba cannot cache code that calls ctypes."""
    from numba import carray, njit

    libc = ctypes.CDLL(None)
    c_write = _function(libc.write, ctypes.c_ssize_t,
                        (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t))
    c_read = _function(libc.read, ctypes.c_ssize_t,
                       (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t))
    c_clock_gettime = _function(libc.clock_gettime, ctypes.c_int, (ctypes.c_int, ctypes.c_void_p))
    c_errno_location = _function(libc.__errno_location, ctypes.POINTER(ctypes.c_int), ())
    eintr = errno.EINTR

    @njit(nogil=True)
    def now_ns(clock):
        c_clock_gettime(CLOCK_MONOTONIC, clock.ctypes)
        return clock[0] * 1_000_000_000 + clock[1]

    @njit(nogil=True)
    def stop(state, index, sent, got, started, status, error):
        state[INDEX], state[SENT], state[GOT], state[STARTED_NS] = index, sent, got, started
        state[STATUS], state[ERRNO] = status, error

    @njit(nogil=True)
    def loop(fd, message, reply, received, rtt, stop_ns, state, clock):
        size = message.size
        index, sent, got, started = state[INDEX], state[SENT], state[GOT], state[STARTED_NS]
        while index < rtt.size:
            if sent == 0 and got == 0:
                started = now_ns(clock)
            while sent < size:
                count = c_write(fd, message[sent:].ctypes, size - sent)
                if count < 0:
                    error = carray(c_errno_location(), 1)[0]
                    stop(state, index, sent, got, started,
                         INTERRUPTED if error == eintr else FAILED, error)
                    return
                sent += count
            while got < size:
                count = c_read(fd, received[got:].ctypes, size - got)
                if count <= 0:
                    error = carray(c_errno_location(), 1)[0] if count < 0 else 0
                    status = EOF if count == 0 else INTERRUPTED if error == eintr else FAILED
                    stop(state, index, sent, got, started, status, error)
                    return
                got += count
            finished = now_ns(clock)
            rtt[index] = max(finished - started, 1)
            for at in range(size):
                if received[at] != reply[at]:
                    state[MISMATCHED] += 1
                    break
            index, sent, got = index + 1, 0, 0
            if finished > stop_ns:  # checked outside the timed span
                stop(state, index, 0, 0, 0, BUDGET, 0)
                return
        stop(state, index, 0, 0, 0, DONE, 0)

    return loop


def _function(function, restype, argtypes):
    function.restype, function.argtypes = restype, argtypes
    return function
