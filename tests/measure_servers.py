"""Small in-process servers with scripted behaviour for the measurement tests.

Each runs an accept thread plus a thread per connection and is stopped (listener
closed, threads joined, Unix socket file removed) by its context manager.
"""

from __future__ import annotations

import gc
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from sockspec.transport import Address, TcpAddress, UnixAddress

Handler = Callable[[socket.socket], None]
IDLE_TIMEOUT = 10.0


class ScriptedServer:
    def __init__(self, handler: Handler, *, unix: bool = False, backlog: int = 1024,
                 host: str = "127.0.0.1") -> None:
        self.handler = handler
        self.unix = unix
        self.host = host
        self.backlog = backlog
        self.threads: list[threading.Thread] = []
        self.connections: list[socket.socket] = []
        self.accepted = 0

    def __enter__(self) -> Address:
        if self.unix:
            self.dir = tempfile.mkdtemp(prefix="ss-")
            path = os.path.join(self.dir, "s.sock")
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(path)
            self.address: Address = UnixAddress(path)
        else:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            self.listener = socket.socket(family, socket.SOCK_STREAM)
            self.listener.bind((self.host, 0))
            self.address = TcpAddress(self.host, self.listener.getsockname()[1])
        self.listener.listen(self.backlog)
        self.listener.settimeout(0.05)
        self.stopping = threading.Event()
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self.threads.append(accept)
        return self.address

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.settimeout(IDLE_TIMEOUT)
            self.connections.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.handler(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self.listener.close()
        for conn in self.connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self.threads:
            thread.join(IDLE_TIMEOUT)
        if self.unix:
            shutil.rmtree(self.dir, ignore_errors=True)


def echo(conn: socket.socket) -> None:
    while data := conn.recv(65536):
        conn.sendall(data)


def echo_stalling_once(at_message: int, seconds: float) -> Handler:
    """Echo; before replying to message number ``at_message`` (1-based), sleep."""
    def handler(conn: socket.socket) -> None:
        count = 0
        while data := conn.recv(65536):
            count += 1
            if count == at_message:
                time.sleep(seconds)
            conn.sendall(data)
    return handler


def echo_delaying_each(seconds: float) -> Handler:
    def handler(conn: socket.socket) -> None:
        while data := conn.recv(65536):
            time.sleep(seconds)
            conn.sendall(data)
    return handler


def echo_in_two_pieces(pause: float) -> Handler:
    """Echo each chunk as two sends with a pause between (a split reply)."""
    def handler(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while data := conn.recv(65536):
            conn.sendall(data[:3])
            time.sleep(pause)
            conn.sendall(data[3:])
    return handler


def close_at_once(conn: socket.socket) -> None:
    """Accept and close without reading: the client sees EOF (or a reset)."""


def echo_first_then_close(conn: socket.socket) -> None:
    data = conn.recv(65536)
    conn.sendall(data)


def echo_corrupted(conn: socket.socket) -> None:
    while data := conn.recv(65536):
        conn.sendall(bytes([data[0] ^ 0xFF]) + data[1:])


def never_answer(conn: socket.socket) -> None:
    """Hold the connection and read, but never write."""
    while conn.recv(65536):
        pass


PROJECT = Path(__file__).resolve().parent.parent
EPOLL_ECHO = PROJECT / "fixtures" / "servers" / "epoll_echo.py"
SERVER_READY_TIMEOUT = 10.0


def start_epoll_echo(args: list[str], prefix: list[str] | None = None,
                     what: str = "epoll_echo.py") -> tuple[subprocess.Popen, int]:
    """Start fixtures/servers/epoll_echo.py with --announce; return it and its port.

    ``prefix`` wraps the command (e.g. `ip netns exec NS`). A server that does
    not announce itself in time is killed and the test fails, naming ``what``.
    """
    import pytest

    command = [sys.executable, str(EPOLL_ECHO), "--profile", "echo", "--announce", *args]
    proc = subprocess.Popen((prefix or []) + command, stdout=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=PROJECT)
    ready, _, _ = select.select([proc.stdout], [], [], SERVER_READY_TIMEOUT)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("READY"):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail(f"{what} did not announce itself: {line!r}")
    return proc, int(line.split()[1])


class SignalTicker:
    """SIGALRM to the main thread every ``interval`` seconds, as a signal arriving
    mid-measurement would: blocking reads and writes return EINTR."""

    def __init__(self, interval: float, on_signal) -> None:
        self.interval, self.on_signal, self.calls = interval, on_signal, 0
        self.stopped = threading.Event()
        self.target = threading.main_thread().ident

    def handler(self, signum, frame) -> None:
        self.calls += 1
        self.on_signal(self.calls)

    def tick(self) -> None:
        while not self.stopped.wait(self.interval):
            signal.pthread_kill(self.target, signal.SIGALRM)

    def __enter__(self):
        self.previous = signal.signal(signal.SIGALRM, self.handler)
        self.thread = threading.Thread(target=self.tick, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join(5)
        signal.signal(signal.SIGALRM, self.previous)


def open_fds() -> int:
    """This process's open file descriptors, after collecting unreachable sockets."""
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


class HandlerStop(Exception):
    """What raise_from_a_signal_handler's handler raises."""


def raise_from_a_signal_handler(warm_up: Callable[[Address], object],
                                measure: Callable[[Address], object]) -> tuple[set[str], int]:
    """Run ``measure`` against a server that delays each echo 2 ms while a SIGALRM
    handler raises at its third call (``warm_up`` first, against a prompt echo server,
    so that no compile or first import is what gets interrupted).

    Returns the names of the functions the exception passed through and the change
    in this process's open file descriptors.
    """
    def stop_at_third(calls):
        if calls == 3:
            raise HandlerStop

    with ScriptedServer(echo) as address:
        warm_up(address)
    before = open_fds()
    with ScriptedServer(echo_delaying_each(0.002)) as address, \
            SignalTicker(0.005, stop_at_third):
        try:
            measure(address)
        except HandlerStop as stopped:
            frames = {frame.f_code.co_name for frame, _ in traceback.walk_tb(stopped.__traceback__)}
        else:
            raise AssertionError("the measurement ended before the handler raised")
    return frames, open_fds() - before
