"""The split-point sweep (scenarios/partial_reads_sweep.py) judges splits, not the
accept queue: an offset that failed among the others counts only if it fails alone.

Two small echo servers in this process make it deterministic:
* one that cannot serve two clients at once: it holds its first client 1.5 s before
  echoing and closes any connection accepted while another is open, so the sweep's
  first wave (8 at once) certainly fails 7 offsets; alone they pass. A connection
  stops counting as open before its reply (or its close) leaves, so the client's next
  connection, which waits for that reply, never finds it still open;
* one with a real split defect (one recv() per request): the offsets fail alone too.

The same two servers judge the declared-protocol sweep (scenarios/proto_partial_reads.py)
through the built-in echo declaration: its exchange is a line echoed back.
"""

from __future__ import annotations

import socket
import threading
import time
from types import SimpleNamespace

import pytest

from sockspec.drivers.declared import wire_of
from sockspec.protocol.builtin import builtin_protocol
from sockspec.scenarios import proto_partial_reads
from sockspec.scenarios.partial_reads_sweep import ECHO_MESSAGE, _echo_check, _sweep
from sockspec.transport import TcpAddress
from sockspec.verdict import ScenarioFailed

FIRST_HOLD_S = 1.5


class EchoServer:
    """A threaded loopback echo server whose ``serve(conn, index, others, done)`` decides;
    ``done()`` ends the connection's count as open (called at the latest before its
    close)."""

    def __init__(self, serve) -> None:
        self.serve = serve
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.listener.settimeout(0.2)
        self.address = TcpAddress("127.0.0.1", self.listener.getsockname()[1])
        self.accepted = 0
        self.active = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.accept_loop, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.listener.close()

    def accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            with self.lock:
                index, others = self.accepted, self.active
                self.accepted += 1
                self.active += 1
            threading.Thread(target=self.handle, args=(conn, index, others), daemon=True).start()

    def handle(self, conn: socket.socket, index: int, others: int) -> None:
        counted = [True]

        def done() -> None:
            with self.lock:
                if counted[0]:
                    counted[0] = False
                    self.active -= 1

        try:
            conn.settimeout(10)
            self.serve(conn, index, others, done)
        except OSError:
            pass
        finally:
            done()
            conn.close()


def one_at_a_time(conn: socket.socket, index: int, others: int, done) -> None:
    if others:
        return                      # closed at once: it came while another was open
    if index == 0:
        time.sleep(FIRST_HOLD_S)    # the first wave arrives while this one is open
    data = b""
    while not data.endswith(b"\n"):
        piece = conn.recv(4096)
        if not piece:
            return
        data += piece
    done()
    conn.sendall(data)


def one_recv(conn: socket.socket, index: int, others: int, done) -> None:
    conn.sendall(conn.recv(4096))   # the defect: a request is what one recv() returned


def sweep(server: EchoServer) -> dict:
    recorded = {}
    _sweep(SimpleNamespace(address=server.address),
           SimpleNamespace(record=recorded.__setitem__), ECHO_MESSAGE, _echo_check)
    return recorded


def test_offsets_that_failed_among_others_pass_alone():
    with EchoServer(one_at_a_time) as server:
        recorded = sweep(server)
    offsets = len(ECHO_MESSAGE) - 1
    assert recorded == {"split_offsets_tried": offsets, "split_offsets_failed": 0}
    # The first wave's other 7 connections were closed and tried again alone.
    assert server.accepted >= offsets + 7


def test_a_split_defect_fails_alone_too():
    with EchoServer(one_recv) as server:
        with pytest.raises(ScenarioFailed) as failed:
            sweep(server)
    offsets = len(ECHO_MESSAGE) - 1
    assert f"at {offsets} of {offsets} byte offsets: 1-{offsets}" in failed.value.summary
    assert failed.value.facts["failed_among_others"] == offsets
    assert failed.value.facts["retried_alone"] == offsets
    assert server.accepted == 2 * offsets


def declared_sweep(server: EchoServer) -> dict:
    recorded = {}
    proto_partial_reads.test_proto_split_point_sweep(
        SimpleNamespace(address=server.address, protocol=builtin_protocol("echo")),
        SimpleNamespace(record=recorded.__setitem__))
    return recorded


def test_declared_sweep_offsets_that_failed_among_others_pass_alone():
    offsets = len(wire_of(builtin_protocol("echo"), 0)) - 1
    with EchoServer(one_at_a_time) as server:
        recorded = declared_sweep(server)
    assert recorded == {"split_offsets_tried": offsets, "split_offsets_failed": 0}
    # The first wave's other 5 connections (6 at once) were closed and tried again alone.
    assert server.accepted >= offsets + 5


def test_declared_sweep_split_defect_fails_alone_too():
    offsets = len(wire_of(builtin_protocol("echo"), 0)) - 1
    with EchoServer(one_recv) as server:
        with pytest.raises(ScenarioFailed) as failed:
            declared_sweep(server)
    assert f"failed at {offsets} of {offsets} (exchange, offset) pairs: echo: 1-{offsets}" \
        in failed.value.summary
    assert failed.value.facts["failed_among_others"] == offsets
    assert failed.value.facts["retried_alone"] == offsets
    assert server.accepted == 2 * offsets
