"""sockspec.drivers.closing: the client's FIN goes out only once the server wrote its echo back,
and a held server reads nothing until it is continued (issue 18: one family's trigger each)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
from test_reference_client import echo_streaming, peer

from sockspec.drivers.closing import (
    connect_with_receive_buffer,
    held_server,
    wait_until_echo_written,
)
from sockspec.transport import read_until_end, send_all

TIMEOUT = 5.0
PAYLOAD = b"closing driver " * (128 * 1024 // 15)


@pytest.mark.parametrize("transport", ["tcp", "tcp6", "unix"])
def test_fin_waits_until_the_whole_echo_is_written_back(transport):
    with peer(transport, echo_streaming) as running:
        with connect_with_receive_buffer(running.address, TIMEOUT, 16 * 1024) as sock:
            send_all(sock, PAYLOAD)
            written = wait_until_echo_written(sock, len(PAYLOAD), TIMEOUT)
            assert (written.how, written.written) == ("complete", len(PAYLOAD))
            sock.shutdown(socket.SHUT_WR)
            rest, end = read_until_end(sock, TIMEOUT, 2 * len(PAYLOAD))
    assert written.read_early + rest == PAYLOAD and end.value == "FIN"


def test_a_server_that_ends_the_stream_stops_the_wait_at_once():
    def echo_a_little_then_close(conn: socket.socket) -> None:
        conn.sendall(conn.recv(10))

    with peer("unix", echo_a_little_then_close) as running:
        with connect_with_receive_buffer(running.address, TIMEOUT, 16 * 1024) as sock:
            send_all(sock, b"0123456789")
            started = time.monotonic()
            written = wait_until_echo_written(sock, 1000, TIMEOUT)
    assert written.how == "ended" and written.written == 10
    assert time.monotonic() - started < TIMEOUT / 2


class _Managed:
    """The part of ServerUnderTest that held_server uses, around a real child process."""

    def __init__(self, popen: subprocess.Popen) -> None:
        self.popen = popen
        self.managed_process = self

    @property
    def process(self):
        return self

    def pause(self) -> None:
        self.popen.send_signal(19)  # SIGSTOP

    def resume(self) -> None:
        self.popen.send_signal(18)  # SIGCONT

    def group_pids(self) -> list[int]:
        return [self.popen.pid]


def test_a_held_server_reads_nothing_until_continued():
    reader = ("import sys, time\n"
              "while True:\n"
              "    line = sys.stdin.readline()\n"
              "    print(f'{time.monotonic():.6f}', flush=True)\n")
    popen = subprocess.Popen([sys.executable, "-c", reader], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        server = _Managed(popen)
        with held_server(server, TIMEOUT) as held:
            assert held
            state = open(f"/proc/{popen.pid}/stat").read().rpartition(")")[2].split()[0]
            assert state == "T"
            popen.stdin.write("x\n")
            popen.stdin.flush()
            sent_at = time.monotonic()
            time.sleep(0.2)
        read_at = float(popen.stdout.readline())
        assert read_at >= sent_at + 0.2
    finally:
        popen.kill()
        popen.wait(TIMEOUT)


def test_an_unmanaged_server_is_not_held():
    class Running:
        managed_process = None

    with held_server(Running(), TIMEOUT) as held:
        assert held is False
