"""The ping-pong loops compiled to machine code with numba (optional).

A CPython client spends ~0.4 µs per round trip on interpreted calls and GIL
hand-offs around its two system calls: 7-10 % of a pinned 5 µs loopback round
trip, which no pure-Python loop can remove (BENCHMARKS.md). Compiled, the loops
make the same write/read/clock_gettime calls as a C client and nothing else.
numba compiles them from Python at run time, so no C compiler is needed:
``pip install 'sockspec[native]'``.

Same rules as ``latency._closed_loop`` and ``latency._open_loop``: time from
before the first write (closed) or from the intended send time (open) to after
the last byte of the reply, short writes and reads finished, every reply
compared, the time budget checked outside the timed span. A signal interrupts
a loop (EINTR) and returns to Python, so handlers run (Ctrl-C works); the
wrapper then resumes the round trip in flight, or the wait for it.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import importlib.util
from dataclasses import dataclass

from sockspec.errors import UsageError

CLOCK_MONOTONIC = 1   # time.perf_counter_ns's clock on Linux, so budgets compare
TIMER_ABSTIME = 1
SPIN_BELOW_NS = 200_000   # sleep until 200 µs before a send is due, then spin

# State shared with the compiled loops (int64 slots), so an interrupted call resumes.
INDEX, SENT, GOT, STARTED_NS, MISMATCHED, STATUS, ERRNO = range(7)
STATE_SLOTS = 7
# STATUS values
DONE, BUDGET, FAILED, EOF, INTERRUPTED = range(1, 6)


ENGINES = ("auto", "native", "python")


def native_available() -> bool:
    return importlib.util.find_spec("numba") is not None


def resolve_engine(engine: str) -> str:
    """The engine that will run, "native" or "python"; refuses one that cannot."""
    if engine not in ENGINES:
        raise UsageError(f"unknown measurement engine {engine!r}; choose from "
                         f"{', '.join(ENGINES)}")
    if engine == "native" and not native_available():
        raise UsageError("the native engine needs numba: pip install 'sockspec[native]'")
    return "native" if engine == "native" or native_available() and engine == "auto" \
        else "python"


@dataclass(frozen=True)
class NativeRun:
    reached: int                  # round trips completed (recorded in rtt[:reached])
    mismatched: int
    errno: int = 0                # a failed write, read or sleep, else 0
    eof_after_bytes: int | None = None   # the peer closed after this many reply bytes


def run_closed_loop(fd: int, message: bytes, reply: bytes, rtt, stop_ns: int) -> NativeRun:
    """Round trips on blocking ``fd``, one per int64 slot of the writable buffer ``rtt``."""
    loops = compile_native_loops()
    return _drive(lambda *buffers: loops.closed(fd, *buffers, stop_ns), message, reply, rtt)


def run_open_loop(fd: int, message: bytes, reply: bytes, rtt, late, first_due_ns: int,
                  interval_ns: float, stop_ns: int) -> NativeRun:
    """Request i due at ``first_due_ns + i * interval_ns``; ``rtt`` gets its service time
    (from the actual send), ``late`` its latency from the due time (both int64 buffers)."""
    import numpy as np

    loops = compile_native_loops()
    delays = np.frombuffer(late, dtype=np.int64)
    return _drive(lambda *buffers: loops.open(fd, *buffers, delays, first_due_ns, interval_ns,
                                              stop_ns), message, reply, rtt)


def _drive(call, message: bytes, reply: bytes, rtt) -> NativeRun:
    """Call a compiled loop until it ends other than by a signal; read its state."""
    import numpy as np

    sent = np.frombuffer(message, dtype=np.uint8).copy()
    expected = np.frombuffer(reply, dtype=np.uint8).copy()
    received = np.zeros(len(reply), dtype=np.uint8)
    samples = np.frombuffer(rtt, dtype=np.int64)
    state = np.zeros(STATE_SLOTS, dtype=np.int64)
    scratch = np.zeros(4, dtype=np.int64)   # two timespecs: the clock read, the wake-up
    while True:
        call(sent, expected, received, samples, state, scratch)
        if state[STATUS] != INTERRUPTED:
            break
        # Back in Python for a moment: pending signal handlers run here (and may raise).
    reached, mismatched = int(state[INDEX]), int(state[MISMATCHED])
    if state[STATUS] == FAILED:
        return NativeRun(reached, mismatched, errno=int(state[ERRNO]))
    if state[STATUS] == EOF:
        return NativeRun(reached, mismatched, eof_after_bytes=int(state[GOT]))
    return NativeRun(reached, mismatched)


@dataclass(frozen=True)
class NativeLoops:
    closed: object
    open: object


END_OF_FILE_ERROR = -1   # in place of an errno: the peer closed


@dataclass(frozen=True)
class NativeIO:
    """Compiled helpers both native modules build their loops from."""

    now_ns: object        # (scratch) -> CLOCK_MONOTONIC ns; scratch[0:2] is a timespec
    last_errno: object    # () -> errno
    exchange: object      # (fd, message, received, sent, got) -> (sent, got, error)
    differs: object       # (received, expected) -> bool


@functools.cache
def native_io() -> NativeIO:
    from numba import carray, njit

    libc = libc_calls()
    c_write, c_read, c_errno_location = libc.write, libc.read, libc.errno_location
    c_clock_gettime = libc.clock_gettime
    end_of_file = END_OF_FILE_ERROR

    @njit(nogil=True)
    def now_ns(scratch):
        c_clock_gettime(CLOCK_MONOTONIC, scratch.ctypes)
        return scratch[0] * 1_000_000_000 + scratch[1]

    @njit(nogil=True)
    def last_errno():
        return carray(c_errno_location(), 1)[0]

    @njit(nogil=True)
    def write_rest(fd, message, sent):
        """(bytes sent, 0) once all is written, or (bytes sent, errno)."""
        while sent < message.size:
            count = c_write(fd, message[sent:].ctypes, message.size - sent)
            if count < 0:
                return sent, last_errno()
            sent += count
        return sent, 0

    @njit(nogil=True)
    def read_rest(fd, received, got):
        """(bytes read, 0) once the reply is in, or (bytes read, errno or end_of_file)."""
        while got < received.size:
            count = c_read(fd, received[got:].ctypes, received.size - got)
            if count == 0:
                return got, end_of_file
            if count < 0:
                return got, last_errno()
            got += count
        return got, 0

    @njit(nogil=True)
    def exchange(fd, message, received, sent, got):
        """Finish the exchange in flight: (sent, got, 0), or where it stopped and why
        (an errno, or end_of_file); called again after EINTR, it carries on."""
        sent, error = write_rest(fd, message, sent)
        if error == 0:
            got, error = read_rest(fd, received, got)
        return sent, got, error

    @njit(nogil=True)
    def differs(received, expected):
        for at in range(received.size):
            if received[at] != expected[at]:
                return True
        return False

    return NativeIO(now_ns, last_errno, exchange, differs)


@functools.cache
def compile_native_loops() -> NativeLoops:
    """Compile once per process (~1 s); numba cannot cache code that calls ctypes."""
    from numba import njit

    io = native_io()
    now_ns, exchange, differs = io.now_ns, io.exchange, io.differs
    c_clock_nanosleep = libc_calls().clock_nanosleep
    eintr, end_of_file = errno.EINTR, END_OF_FILE_ERROR

    @njit(nogil=True)
    def sleep_until(wake_ns, scratch):
        """0, or the errno of clock_nanosleep (EINTR: a signal came)."""
        wake = scratch[2:]
        wake[0], wake[1] = wake_ns // 1_000_000_000, wake_ns % 1_000_000_000
        return c_clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, wake.ctypes, wake.ctypes)

    @njit(nogil=True)
    def wait_until(due_ns, scratch):
        """Sleep to just before ``due_ns``, spin the rest (a sleep wakes 50-100 µs late)."""
        while True:
            remaining = due_ns - now_ns(scratch)
            if remaining <= 0:
                return 0
            if remaining > SPIN_BELOW_NS:
                error = sleep_until(due_ns - SPIN_BELOW_NS, scratch)
                if error:
                    return error

    @njit(nogil=True)
    def stop(state, index, sent, got, started, status, error):
        state[INDEX], state[SENT], state[GOT], state[STARTED_NS] = index, sent, got, started
        state[STATUS], state[ERRNO] = status, error

    @njit(nogil=True)
    def stop_on(state, index, sent, got, started, error):
        status = EOF if error == end_of_file else INTERRUPTED if error == eintr else FAILED
        stop(state, index, sent, got, started, status, max(error, 0))

    @njit(nogil=True)
    def check(received, reply, state):
        if differs(received, reply):
            state[MISMATCHED] += 1

    @njit(nogil=True)
    def closed(fd, message, reply, received, rtt, state, scratch, stop_ns):
        index, sent, got, started = state[INDEX], state[SENT], state[GOT], state[STARTED_NS]
        while index < rtt.size:
            if sent == 0 and got == 0:
                started = now_ns(scratch)
            sent, got, error = exchange(fd, message, received, sent, got)
            if error:
                stop_on(state, index, sent, got, started, error)
                return
            finished = now_ns(scratch)
            rtt[index] = max(finished - started, 1)
            check(received, reply, state)
            index, sent, got = index + 1, 0, 0
            if finished > stop_ns:  # checked outside the timed span
                stop(state, index, 0, 0, 0, BUDGET, 0)
                return
        stop(state, index, 0, 0, 0, DONE, 0)

    @njit(nogil=True)
    def open_(fd, message, reply, received, rtt, state, scratch, late, first_due_ns,
              interval_ns, stop_ns):
        index, sent, got, started = state[INDEX], state[SENT], state[GOT], state[STARTED_NS]
        while index < rtt.size:
            due = first_due_ns + round(index * interval_ns)
            if sent == 0 and got == 0:
                if due > stop_ns:
                    stop(state, index, 0, 0, 0, BUDGET, 0)
                    return
                error = wait_until(due, scratch)
                if error:
                    stop_on(state, index, 0, 0, 0, error)
                    return
                started = now_ns(scratch)
            sent, got, error = exchange(fd, message, received, sent, got)
            if error:
                stop_on(state, index, sent, got, started, error)
                return
            finished = now_ns(scratch)
            rtt[index] = max(finished - started, 1)
            late[index] = max(finished - due, 1)
            check(received, reply, state)
            index, sent, got = index + 1, 0, 0
        stop(state, index, 0, 0, 0, DONE, 0)

    # numba compiles at the first call: make it now, on empty arrays of the real types,
    # so no compile time falls inside a time budget or an open loop's schedule.
    import numpy as np

    no_bytes, no_samples = np.zeros(0, dtype=np.uint8), np.zeros(0, dtype=np.int64)
    state, scratch = np.zeros(STATE_SLOTS, dtype=np.int64), np.zeros(4, dtype=np.int64)
    closed(-1, no_bytes, no_bytes, no_bytes, no_samples, state, scratch, 0)
    open_(-1, no_bytes, no_bytes, no_bytes, no_samples, state, scratch, no_samples, 0, 1.0, 0)
    return NativeLoops(closed, open_)


@dataclass(frozen=True)
class LibcCalls:
    """The libc functions the compiled loops call, typed for ctypes (and so for numba)."""

    write: object
    read: object
    clock_gettime: object
    clock_nanosleep: object
    errno_location: object
    socket: object
    setsockopt: object
    connect: object
    close: object


@functools.cache
def libc_calls() -> LibcCalls:
    libc = ctypes.CDLL(None)
    c_int, c_void_p, c_size_t, c_ssize_t = (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t,
                                            ctypes.c_ssize_t)
    return LibcCalls(
        write=_typed(libc.write, c_ssize_t, (c_int, c_void_p, c_size_t)),
        read=_typed(libc.read, c_ssize_t, (c_int, c_void_p, c_size_t)),
        clock_gettime=_typed(libc.clock_gettime, c_int, (c_int, c_void_p)),
        clock_nanosleep=_typed(libc.clock_nanosleep, c_int, (c_int, c_int, c_void_p, c_void_p)),
        errno_location=_typed(libc.__errno_location, ctypes.POINTER(c_int), ()),
        socket=_typed(libc.socket, c_int, (c_int, c_int, c_int)),
        setsockopt=_typed(libc.setsockopt, c_int, (c_int, c_int, c_int, c_void_p, c_int)),
        connect=_typed(libc.connect, c_int, (c_int, c_void_p, c_int)),
        close=_typed(libc.close, c_int, (c_int,)),
    )


def _typed(function, restype, argtypes):
    function.restype, function.argtypes = restype, argtypes
    return function
