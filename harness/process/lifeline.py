"""Programs under test never outlive the harness, even when it is killed with SIGKILL.

Two mechanisms, because neither suffices alone:

* Parent-death signal. Every program under test is started with
  prctl(PR_SET_PDEATHSIG, SIGKILL) set in the child before exec, so the kernel
  kills it when its parent dies. The kernel sends it when the *thread* that
  forked the child ends, not the process, so programs are forked only from a
  thread that lives as long as the process: the main thread, or else one
  long-lived spawner thread. A caller in another network namespace (the wire
  lab starts its server from a thread that joined the lab's namespace) hands
  the spawner its namespace, which the child joins with setns() before exec.

* A watchdog process (harness/process/watchdog.py), one per harness process,
  started on first need in a session of its own (so signals to the harness's
  process group do not reach it). The harness tells it about each program's
  process group, environment token, lifetime and every process attributed to
  it. When the harness process dies (however: its pidfd becomes readable, its
  pipe reaches end of file) the watchdog kills everything still registered,
  including daemons that left the process group and children that the
  parent-death signal does not cover (it is not inherited across fork), then
  removes that pid's directories and namespaces (sockspec.cleanup). It also
  enforces each program's lifetime if the harness is alive but stuck
  (stopped, hung): LIFETIME_SLACK_S after the in-harness watcher would have.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1          # <linux/prctl.h>
CLONE_NEWNET = 0x40000000
LIFETIME_SLACK_S = 30.0       # the watchdog's lifetime kill comes this long after the harness's
WATCHDOG_SCRIPT = Path(__file__).with_name("watchdog.py")

# Resolved now: the child of a fork must not look anything up before exec.
_libc = ctypes.CDLL(None, use_errno=True)
_prctl = _libc.prctl
_setns = getattr(_libc, "setns", None)


def _child_setup(parent: int, netns_fd: int | None) -> None:
    """Runs in the child between fork and exec (preexec_fn): only system calls."""
    if netns_fd is not None and (_setns is None or _setns(netns_fd, CLONE_NEWNET) != 0):
        raise OSError(ctypes.get_errno(), "setns into the caller's network namespace")
    _prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), ctypes.c_ulong(0),
           ctypes.c_ulong(0), ctypes.c_ulong(0))
    if os.getppid() != parent:  # the harness died before the line above
        os.kill(os.getpid(), signal.SIGKILL)


def popen(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """subprocess.Popen(argv, **kwargs) for a program under test: it dies with the harness."""
    ensure_watchdog()
    if threading.current_thread() is threading.main_thread():
        return _popen(argv, kwargs, None)
    netns_fd = _foreign_netns()
    try:
        return _SPAWNER.call(lambda: _popen(argv, kwargs, netns_fd))
    finally:
        if netns_fd is not None:
            os.close(netns_fd)


def _popen(argv: list[str], kwargs: dict[str, Any], netns_fd: int | None
           ) -> subprocess.Popen[bytes]:
    parent = os.getpid()
    return subprocess.Popen(argv, preexec_fn=lambda: _child_setup(parent, netns_fd), **kwargs)


def _main_thread_netns() -> str:
    return f"/proc/{os.getpid()}/task/{os.getpid()}/ns/net"


def _foreign_netns() -> int | None:
    """An fd of the calling thread's network namespace if it is not the main thread's."""
    try:
        mine = os.stat("/proc/thread-self/ns/net")
        main = os.stat(_main_thread_netns())
    except OSError:
        return None
    if (mine.st_dev, mine.st_ino) == (main.st_dev, main.st_ino):
        return None
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


class _Spawner:
    """One daemon thread, alive as long as the process, that forks for other threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], dict[str, Any],
                                            threading.Event]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._owner = -1

    def call(self, function: Callable[[], Any]) -> Any:
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._owner != os.getpid():
                self._jobs = queue.SimpleQueue()
                self._thread = threading.Thread(target=self._serve, name="sockspec-spawner",
                                                daemon=True)
                self._owner = os.getpid()
                self._thread.start()
        outcome: dict[str, Any] = {}
        done = threading.Event()
        self._jobs.put((function, outcome, done))
        done.wait()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def _serve(self) -> None:
        # Started from whichever thread first needed it: go home to the main thread's
        # namespace, so no lab namespace is kept alive by this thread.
        try:
            fd = os.open(_main_thread_netns(), os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _setns is not None:
                    _setns(fd, CLONE_NEWNET)
            finally:
                os.close(fd)
        except OSError:
            pass
        jobs = self._jobs
        while True:
            function, outcome, done = jobs.get()
            try:
                outcome["value"] = function()
            except BaseException as exc:  # handed to the caller's thread
                outcome["error"] = exc
            done.set()


_SPAWNER = _Spawner()


# -- the watchdog process ---------------------------------------------------------------


class _WatchdogLink:
    def __init__(self) -> None:
        self.owner = os.getpid()
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(WATCHDOG_SCRIPT), str(self.owner)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            cwd="/", close_fds=True, start_new_session=True)

    def alive(self) -> bool:
        return self.owner == os.getpid() and self.process.poll() is None

    def send(self, line: str) -> None:
        with self._lock:
            stdin = self.process.stdin
            if stdin is None or stdin.closed:
                return
            try:
                stdin.write(line.encode() + b"\n")
                stdin.flush()
            except (OSError, ValueError):
                pass  # it died: ensure_watchdog() starts another for the next program

    def close(self) -> None:
        with self._lock:
            if self.process.stdin is not None and not self.process.stdin.closed:
                try:
                    self.process.stdin.close()
                except OSError:
                    pass


_link: _WatchdogLink | None = None
_link_lock = threading.Lock()


def ensure_watchdog() -> None:
    """Start this process's watchdog unless it runs (not from a forked child's copy)."""
    global _link
    with _link_lock:
        if _link is None or not _link.alive():
            try:
                _link = _WatchdogLink()
            except OSError:
                _link = None


def watchdog_pid() -> int | None:
    with _link_lock:
        return _link.process.pid if _link is not None and _link.alive() else None


def _send(line: str) -> None:
    with _link_lock:
        link = _link
    if link is not None and link.owner == os.getpid():
        link.send(line)


def watch_group(key: str, pgid: int, token: str, lifetime: float) -> None:
    """Register a program's process group and token; killed with the harness or past lifetime."""
    deadline = time.monotonic() + lifetime + LIFETIME_SLACK_S
    _send(f"G {key} {pgid} {deadline:.3f} {token}")


def watch_processes(key: str, identities: Iterable[tuple[int, int]]) -> None:
    """Processes (pid, starttime) attributed to the program: killed with it."""
    pairs = " ".join(f"{pid}:{start}" for pid, start in identities)
    if pairs:
        _send(f"K {key} {pairs}")


def unwatch_group(key: str) -> None:
    _send(f"D {key}")


def _close_link() -> None:
    with _link_lock:
        link = _link
    if link is not None and link.owner == os.getpid():
        link.close()  # end of file: it waits for this process to end, then sweeps


atexit.register(_close_link)
