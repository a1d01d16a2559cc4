"""Run the reference server as a subprocess in tests, always stopped by process group.

Small on purpose: the project's general process control lives elsewhere; this
only serves tests/test_reference_server.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sockspec.errors import ConnectError
from sockspec.transport import Address, TcpAddress, UnixAddress, connect

REPO = Path(__file__).resolve().parents[1]
TRANSPORTS = ("tcp", "tcp6", "unix")
READY_TIMEOUT = 15.0  # generous: a cold Python start on a busy 2-core machine
EXIT_TIMEOUT = 15.0
_POLL_INTERVAL = 0.02


@dataclass
class RunningServer:
    proc: subprocess.Popen[bytes]
    address: Address
    stderr: bytes = b""  # filled in once the server has been stopped

    @property
    def pid(self) -> int:
        return self.proc.pid


def free_tcp_port(host: str) -> int:
    """A port nobody listens on right now (bind port 0, read it, close)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@contextmanager
def short_socket_dir() -> Iterator[str]:
    """A directory under /tmp short enough for Unix socket paths; removed afterwards."""
    path = tempfile.mkdtemp(prefix="ss-", dir="/tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def address_for(transport: str, socket_dir: str) -> Address:
    if transport == "tcp":
        return TcpAddress("127.0.0.1", free_tcp_port("127.0.0.1"))
    if transport == "tcp6":
        return TcpAddress("::1", free_tcp_port("::1"))
    if transport == "unix":
        return UnixAddress(os.path.join(socket_dir, "server.sock"))
    raise ValueError(f"unknown transport {transport!r}")


def address_args(address: Address) -> list[str]:
    if isinstance(address, UnixAddress):
        return ["-u", address.path]
    return ["-p", str(address.port), "-h", address.host]


def server_args(
    profile: str, address: Address, root: str | None = None, extra: Sequence[str] = ()
) -> list[str]:
    args = ["--profile", profile, *address_args(address)]
    if root is not None:
        args += ["-r", root]
    return args + list(extra)


def spawn_server(args: Sequence[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sockspec.reference.server", *args],
        cwd=REPO,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_until_accepting(
    proc: subprocess.Popen[bytes], address: Address, timeout: float = READY_TIMEOUT
) -> None:
    """Poll ``address`` with connect() until it accepts; fail if the server exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            _, err = proc.communicate(timeout=EXIT_TIMEOUT)
            raise AssertionError(
                f"server exited with {proc.returncode} before accepting: {err.decode()!r}"
            )
        try:
            connect(address, timeout=1.0).close()
            return
        except ConnectError as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"server not accepting after {timeout} s: {exc}") from exc
        time.sleep(_POLL_INTERVAL)


def stop_server(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """SIGKILL the server's process group (if still running), reap it, return its output."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    out, err = proc.communicate(timeout=EXIT_TIMEOUT)
    return out, err


@contextmanager
def running_server(
    profile: str,
    transport: str,
    root: str | None = None,
    extra: Sequence[str] = (),
) -> Iterator[RunningServer]:
    """Start the reference server on a fresh port or socket path; yield it once accepting."""
    with short_socket_dir() as socket_dir:
        address = address_for(transport, socket_dir)
        proc = spawn_server(server_args(profile, address, root, extra))
        server = RunningServer(proc, address)
        try:
            wait_until_accepting(proc, address)
            yield server
        finally:
            _, server.stderr = stop_server(proc)


def run_to_exit(args: Sequence[str], timeout: float = EXIT_TIMEOUT) -> subprocess.CompletedProcess:
    """Run the server CLI expecting it to exit on its own (usage error, cannot listen)."""
    proc = spawn_server(args)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_server(proc)
        raise AssertionError(f"server {list(args)} did not exit within {timeout} s") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_for_exit(proc: subprocess.Popen[bytes], timeout: float = EXIT_TIMEOUT) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"server did not exit within {timeout} s") from None


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def thread_count(pid: int) -> int:
    return int(_status_field(pid, "Threads"))


def process_state(pid: int) -> str:
    return _status_field(pid, "State")


def _status_field(pid: int, name: str) -> str:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key == name:
                return value.strip()
    raise KeyError(name)


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll ``condition`` until true or ``timeout`` s pass; return its last value."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return condition()
        time.sleep(_POLL_INTERVAL)
    return True
