"""Signals that stop a run: SIGINT, SIGTERM and SIGHUP end it cleanly, never silently.

While items run, the first of them raises ``Interrupted`` (a KeyboardInterrupt,
as Ctrl-C does), so pytest stops the running item, tears down its fixtures
(its servers) and calls pytest_sessionfinish, where every server still running
is stopped and the results of what finished are written. From the first signal
on, and outside the item loop (collection, session finish), a signal is only
noted: a second Ctrl-C, or the SIGTERM that follows a SIGINT, cannot break the
stopping of servers or the writing of the results.

``sockspec run`` exits 128 + the signal's number (130, 143, 129), as a shell
reports a program killed by it.

A ``SignalGuard`` is a pytest plugin: ``sockspec run`` passes one to
pytest.main() to learn the signal afterwards; under plain pytest (and in each
xdist worker) sockspec.plugin.session registers its own.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

import pytest

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_status(signum: int) -> int:
    """What a shell shows for a program ended by ``signum``: 130, 143, 129."""
    return 128 + signum


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived while items ran."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal_name(signum)}")
        self.signum = signum


class SignalGuard:
    """Turns SIGINT, SIGTERM and SIGHUP into one orderly stop and remembers which came."""

    def __init__(self) -> None:
        self.signum: int | None = None       # the first stop signal this process got
        self.worker_signum: int | None = None  # the first one an xdist worker reported
        self.repeats = 0
        self._armed = False
        self._previous: dict[int, object] = {}
        self._on_first: list[Callable[[int], None]] = []

    @property
    def stopped_by(self) -> int | None:
        """The signal that stopped the run: this process's, else a worker's."""
        return self.signum if self.signum is not None else self.worker_signum

    def install(self) -> None:
        """Take over the stop signals, unless someone chose otherwise (e.g. nohup's SIG_IGN)."""
        for signum in STOP_SIGNALS:
            current = signal.getsignal(signum)
            if current in (signal.SIG_DFL, signal.default_int_handler) or \
                    getattr(current, "__self__", None) is self:
                self._previous.setdefault(signum, current)
                signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        for signum, previous in self._previous.items():
            if getattr(signal.getsignal(signum), "__self__", None) is self:
                signal.signal(signum, previous)
        self._previous.clear()

    def on_first_signal(self, action: Callable[[int], None]) -> None:
        """Run ``action(signum)`` when the first stop signal arrives (e.g. pass it on)."""
        self._on_first.append(action)

    def arm(self) -> None:
        """From now on a stop signal raises Interrupted; one that came already does now."""
        if self.signum is not None:
            raise Interrupted(self.signum)
        self._armed = True

    def disarm(self) -> None:
        self._armed = False

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is not None:
            self.repeats += 1
            if self.repeats == 1:
                _say(f"sockspec: {signal_name(signum)} again: still stopping the servers "
                     "and writing the results of what finished\n")
            return
        self.signum = signum
        if signum == signal.SIGHUP:
            _detach_from_hung_up_terminal()
        for action in self._on_first:
            try:
                action(signum)
            except Exception:  # noqa: BLE001 - passing the signal on must not mask it
                pass
        if self._armed:
            self._armed = False
            raise Interrupted(signum)

    # pytest hooks: armed only while items run.

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session):
        self.arm()
        try:
            return (yield)
        finally:
            self.disarm()

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None):
        try:
            return (yield)
        finally:
            # Scenario code that swallowed the KeyboardInterrupt must not keep the run going.
            if self.signum is not None and not item.session.shouldstop:
                item.session.shouldstop = f"stopped by {signal_name(self.signum)}"

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.disarm()


def _say(text: str) -> None:
    try:
        os.write(2, text.encode())
    except OSError:
        pass


def _detach_from_hung_up_terminal() -> None:
    """After a hang-up, writing to the terminal fails (EIO) and would stop the writing
    of the results half-way: send what would have gone there to /dev/null."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        for fd in (1, 2):
            try:
                if os.isatty(fd):
                    os.dup2(devnull, fd)
            except OSError:
                pass
    finally:
        os.close(devnull)


# Aids for watching a run and for stopping it at a chosen moment (the interruption
# tests use them; README, "Interrupting a run"). Both are off unless set.
PROGRESS_ENV = "SOCKSPEC_PROGRESS_FILE"
PAUSE_ENV = "SOCKSPEC_PAUSE_AT"


def note_progress(event: str, nodeid: str) -> None:
    """Append "<event> <nodeid>" to $SOCKSPEC_PROGRESS_FILE: "start" when an item's
    call phase begins, "called" when it returned (the scenario ran to its end and
    passed), "paused <pid>" when SOCKSPEC_PAUSE_AT stopped the process."""
    path = os.environ.get(PROGRESS_ENV)
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{event} {nodeid}\n".encode())  # one write: lines never mix
        finally:
            os.close(fd)


class Pause:
    """$SOCKSPEC_PAUSE_AT="<part of a node id>[@<seconds>]": the process running the
    first matching item stops itself (SIGSTOP) that many seconds into its call phase,
    or at the end of the call phase if that comes first, so a debugger or a test
    can act while the item is surely still running; SIGCONT resumes it."""

    def __init__(self, nodeid: str, delay: float) -> None:
        self.nodeid = nodeid
        self._lock = threading.Lock()
        self._fired = False
        self._timer = threading.Timer(delay, self._fire)
        self._timer.daemon = True

    @classmethod
    def for_item(cls, nodeid: str) -> Pause | None:
        wanted = os.environ.get(PAUSE_ENV, "")
        part, _, delay = wanted.rpartition("@") if "@" in wanted else (wanted, "", "0")
        if not part or part not in nodeid:
            return None
        os.environ.pop(PAUSE_ENV)  # once per process
        pause = cls(nodeid, float(delay))
        pause._timer.start()
        return pause

    def _fire(self) -> None:
        with self._lock:
            if self._fired:
                return
            self._fired = True
        note_progress(f"paused {os.getpid()}", self.nodeid)
        os.kill(os.getpid(), signal.SIGSTOP)

    def at_end_of_call(self) -> None:
        """Pause now if the timer has not; wait for a pause under way to be resumed."""
        self._timer.cancel()
        self._fire()
        if self._timer.is_alive():
            self._timer.join()
