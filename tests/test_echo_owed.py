"""leave_while_echo_owed makes the server's next send() meet a dead peer, every time.

One attempt, no repeats: a server with SIGPIPE at its default action dies of
SIGPIPE, and the reference server (SIGPIPE ignored) gets EPIPE and survives.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sockspec.drivers.owed import leave_while_echo_owed
from sockspec.process import wait_until_accepting
from sockspec.transport import TcpAddress, UnixAddress

PROJECT = Path(__file__).resolve().parent.parent
SIGPIPE_DEFAULT = PROJECT / "fixtures" / "faulty" / "sigpipe_default.py"
REPEATS = 5          # the same result each time: a proof, not a race
TIMEOUT = 10.0


def _start(program: list[str], transport: str, directory: str):
    if transport == "unix":
        address = UnixAddress(os.path.join(directory, "s.sock"))
        where = ["-u", address.path]
    else:
        host = "127.0.0.1" if transport == "tcp" else "::1"
        import socket
        with socket.socket(socket.AF_INET if transport == "tcp" else socket.AF_INET6) as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
        address = TcpAddress(host, port)
        where = ["-h", host, "-p", str(port)]
    proc = subprocess.Popen([sys.executable, *program, "--profile", "echo", *where],
                            cwd=PROJECT, start_new_session=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_until_accepting(address, time.monotonic() + TIMEOUT,
                                proc_alive=lambda: proc.poll() is None)
    return proc, address


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(TIMEOUT)


@pytest.mark.parametrize("transport", ["unix", "tcp", "tcp6"])
def test_a_server_with_default_sigpipe_dies_every_time(transport):
    for _ in range(REPEATS):
        with tempfile.TemporaryDirectory(prefix="ss-owed-") as directory:
            proc, address = _start([str(SIGPIPE_DEFAULT)], transport, directory)
            try:
                owed = leave_while_echo_owed(address, TIMEOUT)
                assert owed.owed > 0
                assert proc.wait(TIMEOUT) == -signal.SIGPIPE, owed.describe()
            finally:
                _stop(proc)


@pytest.mark.parametrize("transport", ["unix", "tcp", "tcp6"])
def test_the_reference_server_meets_epipe_and_keeps_serving(transport):
    with tempfile.TemporaryDirectory(prefix="ss-owed-") as directory:
        proc, address = _start(["-m", "sockspec.reference.server"], transport, directory)
        try:
            for _ in range(REPEATS):
                owed = leave_while_echo_owed(address, TIMEOUT)
                assert owed.owed > 0, owed.describe()
                if transport != "unix":
                    assert owed.server_blocked is not False, owed.describe()
            assert proc.poll() is None
            assert wait_until_accepting(address, time.monotonic() + TIMEOUT)
        finally:
            _stop(proc)
