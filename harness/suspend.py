"""Notice that the harness itself was stopped (SIGSTOP or Ctrl-Z, then SIGCONT).

While the harness is stopped, the program under test is not: a client facing
the harness's server times out, a measurement counts the pause as the
server's latency. Such a verdict says nothing about the program, so an item
during which the harness was suspended is ``error`` (HarnessError), not failed.

Two witnesses, so that neither a busy machine nor a late handler misleads:
a heartbeat thread that wakes every BEAT_S sees a gap in CLOCK_MONOTONIC
(which keeps counting while the process is stopped), and a SIGCONT handler
proves that the gap was a stop and not the scheduler. A gap counts when a
SIGCONT arrived within it (or shortly after: the handler runs in the main
thread, which may be busy when the process continues).
"""

from __future__ import annotations

import signal
import threading
import time

from sockspec.errors import HarnessError

__all__ = ["check_not_suspended", "install", "suspended_since"]

BEAT_S = 0.05
GAP_S = 0.5              # a heartbeat later than this is a gap worth explaining
HANDLER_LATENESS_S = 5.0

_lock = threading.Lock()
_installed = False
_last_beat = 0.0
_gaps: list[tuple[float, float]] = []       # (last beat before, first beat after)
_continued: list[float] = []                # monotonic times SIGCONT was handled


def install() -> None:
    """Start the heartbeat and the SIGCONT handler, once per process (idempotent).

    Call it in processes that run scenarios. The handler is installed only
    from the main thread (a Python rule); the previous handler still runs.
    """
    global _installed, _last_beat
    with _lock:
        if _installed:
            return
        _installed = True
        _last_beat = time.monotonic()
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGCONT)

        def continued(signum: int, frame: object) -> None:
            _note_continue(time.monotonic())
            if callable(previous):
                previous(signum, frame)

        signal.signal(signal.SIGCONT, continued)
    threading.Thread(target=_heartbeat, name="sockspec-suspend-heartbeat", daemon=True).start()


def _heartbeat() -> None:
    global _last_beat
    while True:
        time.sleep(BEAT_S)
        now = time.monotonic()
        with _lock:
            if now - _last_beat > GAP_S:
                _gaps.append((_last_beat, now))
                del _gaps[:-64]
            _last_beat = now


def _note_continue(now: float) -> None:
    with _lock:
        _continued.append(now)
        del _continued[:-64]
        if now - _last_beat > GAP_S:      # the heartbeat has not run since the stop yet
            _gaps.append((_last_beat, now))


def suspended_since(since: float) -> float:
    """Seconds the harness was stopped between monotonic time ``since`` and now."""
    with _lock:
        gaps, continued = list(_gaps), list(_continued)
    stops = sorted((max(start, since), end) for start, end in gaps
                   if end > since and any(start <= c <= end + HANDLER_LATENESS_S
                                          for c in continued))
    total, reach = 0.0, since
    for start, end in stops:                 # overlapping witnesses of one stop count once
        start = max(start, reach)
        if end > start:
            total += end - start
            reach = end
    return total


def check_not_suspended(since: float, what: str = "this scenario") -> None:
    """Raise HarnessError if the harness was stopped since ``since`` (monotonic)."""
    seconds = suspended_since(since)
    if seconds > 0:
        raise HarnessError(f"the harness was suspended for {seconds:.1f} s during {what}; "
                           "its timing verdict is void")
