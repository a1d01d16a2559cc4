"""harness/drivers/load.py: bounded waits and runs without sockets, connection shapes over loopback."""

from __future__ import annotations

import itertools
import socket
import threading
import time

import pytest

from sockspec.drivers.load import (
    close_without_sending,
    connect_burst,
    echo_then_close,
    echo_then_reset,
    fill_until_blocked,
    get_then_close,
    reset_mid_request,
    run_in_sequence,
    settle_count,
    tcp_states_on_port,
    wait_until_still,
)
from sockspec.errors import SockspecError
from sockspec.reference.server import ReferenceServer
from sockspec.transport import TcpAddress

IO_TIMEOUT = 5.0


# ------------------------------------------------------------ pure-ish


def test_settle_count_returns_at_once_when_the_target_is_reached():
    settled = settle_count(lambda: 3, at_most=5, stable_for=10.0, timeout=10.0)
    assert (settled.value, settled.how) == (3, "reached")


def test_settle_count_stops_when_the_value_stays_put():
    settled = settle_count(lambda: 9, at_most=5, stable_for=0.05, timeout=10.0)
    assert (settled.value, settled.how) == (9, "stable")


def test_settle_count_gives_up_at_the_timeout_while_the_value_keeps_changing():
    counter = itertools.count(100)
    settled = settle_count(lambda: next(counter), at_most=5, stable_for=10.0, timeout=0.1)
    assert settled.how == "timeout" and settled.value > 100


def test_run_in_sequence_counts_every_call():
    calls = []
    run = run_in_sequence(5, calls.append, time_limit=10.0)
    assert calls == [0, 1, 2, 3, 4]
    assert (run.completed, run.failure, run.stopped_early) == (5, None, None)


def test_run_in_sequence_names_the_first_failing_connection():
    def one(index: int) -> None:
        if index == 3:
            raise SockspecError("connection refused by tcp:127.0.0.1:1")

    run = run_in_sequence(10, one, time_limit=10.0)
    assert run.completed == 3
    assert run.failure == "connection #4: connection refused by tcp:127.0.0.1:1"


def test_run_in_sequence_stops_when_the_rate_cannot_fit_the_budget():
    run = run_in_sequence(100_000, lambda index: time.sleep(0.002), time_limit=5.0,
                          judge_rate_after=0.05)
    assert run.failure is None
    assert run.stopped_early and "would not fit in the 5 s budget" in run.stopped_early
    assert 0 < run.completed < 100_000


# ------------------------------------------------------------ over loopback


def test_connect_burst_counts_the_accept_queue_of_a_listener_that_never_accepts():
    # listen(1): the kernel queues backlog + 1 = 2 handshakes, drops the other SYNs.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        address = TcpAddress("127.0.0.1", listener.getsockname()[1])
        burst = connect_burst(address, 6, window=0.3)
    assert (burst.completed, burst.pending, burst.failed) == (2, 4, {})


def test_connect_burst_completes_everything_a_large_backlog_holds():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        address = TcpAddress("127.0.0.1", listener.getsockname()[1])
        burst = connect_burst(address, 16, window=IO_TIMEOUT)
        states = tcp_states_on_port(address.port)
    assert (burst.completed, burst.pending) == (16, 0)
    assert states.get("LISTEN") == 1


def test_fill_until_blocked_stops_when_the_peer_reads_nothing():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.settimeout(IO_TIMEOUT)
        fill = fill_until_blocked(ours, max_bytes=64 * 1024 * 1024, stall_s=0.05,
                                  time_limit=IO_TIMEOUT)
        assert fill.blocked and fill.error is None
        assert 0 < fill.sent < 64 * 1024 * 1024
        assert ours.gettimeout() == IO_TIMEOUT  # restored


def test_fill_until_blocked_stops_at_the_byte_cap():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        fill = fill_until_blocked(ours, max_bytes=1000, stall_s=0.05, time_limit=IO_TIMEOUT)
    assert (fill.sent, fill.blocked) == (1000, False)


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        ours = socket.create_connection(listener.getsockname(), timeout=IO_TIMEOUT)
        theirs, _ = listener.accept()
    theirs.settimeout(IO_TIMEOUT)
    return ours, theirs


def _peer_acts(theirs: socket.socket, act, stop: threading.Event) -> threading.Thread:
    def run():
        while not stop.wait(0.02):
            act(theirs)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_wait_until_still_returns_once_the_peer_neither_reads_nor_sends():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        fill_until_blocked(ours, max_bytes=64 * 1024 * 1024, stall_s=0.05,
                           time_limit=IO_TIMEOUT)
        began = time.monotonic()
        assert wait_until_still(ours, 0.2, IO_TIMEOUT)
        assert 0.2 <= time.monotonic() - began < IO_TIMEOUT


@pytest.mark.parametrize("act", ("sends to us", "reads from us"))
def test_wait_until_still_waits_out_a_peer_that_still_moves(act):
    """A peer that stopped taking bytes for a moment but still sends (replies it owes),
    or reads again: not still, however long it goes on (here: 0.6 s of it)."""
    ours, theirs = _tcp_pair()   # MiBs in its queues: a reader 64 KiB at a time lasts
    with ours, theirs:
        fill_until_blocked(ours, max_bytes=64 * 1024 * 1024, stall_s=0.05,
                           time_limit=IO_TIMEOUT)
        stop = threading.Event()
        step = ((lambda peer: peer.send(b"x" * 64)) if act == "sends to us"
                else (lambda peer: peer.recv(64 * 1024)))
        thread = _peer_acts(theirs, step, stop)
        try:
            assert not wait_until_still(ours, 0.2, 0.6)
        finally:
            stop.set()
            thread.join(IO_TIMEOUT)
        assert wait_until_still(ours, 0.2, IO_TIMEOUT)  # it stopped: still at last


def test_echo_connection_shapes_against_the_reference_server():
    with ReferenceServer(TcpAddress("127.0.0.1", 0), "echo") as address:
        echo_then_close(address, b"line\n", IO_TIMEOUT)
        echo_then_reset(address, b"line\n", IO_TIMEOUT)
        close_without_sending(address, IO_TIMEOUT)


def test_http_connection_shapes_against_the_reference_server(tmp_path):
    (tmp_path / "small.txt").write_bytes(b"small body\n")
    with ReferenceServer(TcpAddress("127.0.0.1", 0), "http", str(tmp_path)) as address:
        get_then_close(address, "/small.txt", b"small body\n", IO_TIMEOUT)
        reset_mid_request(address, IO_TIMEOUT)
        with pytest.raises(SockspecError, match="404"):
            get_then_close(address, "/missing.txt", b"", IO_TIMEOUT)
