"""Pieces that wait until the server has read the ones before (sockspec.drivers.peer).

A scenario that sends a message in pieces proves its defect only if the
server's recv() returns each piece alone. A pause between pieces gives that on
an idle machine; a server the scheduler keeps from running longer than the
pause reads the pieces together, and a server with the defect passes. These
tests make that starvation certain (the faulty server sleeps before a recv())
and show the scenarios still fail it, while the pause alone let it pass.
"""

from __future__ import annotations

import re
import shlex
import socket
import sys
import time
from pathlib import Path

import pytest
from example_variants import EXAMPLES
from packets_support import sockspec_run
from sockspec_runner import FAULTY_DIR, server_cmd
from test_proto_families import run_families

from sockspec.drivers.peer import ReadAlone, read_everything
from sockspec.drivers.wire import wire_unavailable_reason

UNAVAILABLE = wire_unavailable_reason()
needs_lab = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"{UNAVAILABLE}")


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return client, server


def test_read_everything_follows_what_the_tcp_server_has_read():
    client, server = tcp_pair()
    with client, server:
        assert read_everything(client) is True          # nothing sent yet
        client.sendall(b"abc")
        time.sleep(0.05)
        assert read_everything(client) is False         # queued at the server, unread
        assert server.recv(2) == b"ab"
        assert read_everything(client) is False         # one byte still unread
        assert server.recv(10) == b"c"
        assert read_everything(client) is True
        client.sendall(b"d")
        time.sleep(0.05)
        assert read_everything(client) is False         # counts are of the whole connection
        server.close()                                  # unread data: the server resets
        time.sleep(0.05)
        assert read_everything(client) is None          # its socket is gone


def test_read_everything_follows_what_the_unix_server_has_read():
    client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with client, server:
        client.sendall(b"abc")
        assert read_everything(client) is False
        assert server.recv(2) == b"ab"
        assert read_everything(client) is False
        assert server.recv(10) == b"c"
        assert read_everything(client) is True


def test_read_alone_waits_then_stops_waiting_for_a_server_that_stopped_reading():
    answers = iter([False, False, True])
    alone = ReadAlone(lambda: next(answers), limit_s=1.0, idle=lambda s: None)
    alone.before_next(1)
    assert alone.stopped_at is None and alone.words().startswith(
        "yes: before each of the 1 further piece, it had read all sent (longest wait")
    alone = ReadAlone(lambda: False, limit_s=0.05)
    began = time.monotonic()
    alone.before_next(1)
    alone.before_next(2)                                # no second wait
    assert time.monotonic() - began < 0.5
    assert alone.stopped_at == 1 and alone.words() == (
        "no: it left piece 1 unread for 0.05 s, so the rest went without waiting")
    alone = ReadAlone(lambda: None, limit_s=5.0)
    alone.before_next(3)
    assert alone.words() == ("no: the kernel no longer had its socket (closed or reset), so "
                             "the rest went without waiting")


def starved(tmp_path, faulty: str, patch: str) -> Path:
    """A faulty server with a pause the scheduler could have imposed, put in by ``patch``."""
    script = tmp_path / f"{faulty}_starved.py"
    script.write_text(
        "import signal, sys, time\n"
        f"sys.path.insert(0, {str(FAULTY_DIR)!r})\n"
        f"import {faulty} as faulty\n"
        "from sockspec.reference import connection, server\n"
        f"{patch}\n"
        "signal.alarm(600)\n"
        "sys.exit(server.main())\n")
    return script


# one recv() per connection, made 0.3 s late: with pauses alone every piece (100 ms
# apart) or byte (2 ms) had arrived by then, that one recv() took the whole message,
# and the defect passed.
ONE_LATE_RECV = (
    "def serve(conn, config):\n"
    "    time.sleep(0.3)\n"
    "    faulty.serve_echo_one_recv(conn, config)\n"
    "connection.serve_echo = serve")


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_pieces_wait_for_a_server_slow_to_read(tmp_path, transport):
    script = starved(tmp_path, "one_recv_echo", ONE_LATE_RECV)
    (record,) = sockspec_run(tmp_path, *server_cmd(script, "echo", transport),
                             "--transport", transport, "echo_message_in_three_pieces")
    assert record["outcome"] == "failed", record["evidence"]
    # its one recv() returned the first piece alone (52 bytes), however late it ran
    assert "52 bytes came back where 143 were sent" in record["evidence"], record["evidence"]
    said = re.search(r"server read each piece alone: (no: the kernel no longer had its "
                     r"socket|yes)", record["evidence"])
    assert said, record["evidence"]


@needs_lab
def test_wire_bytes_wait_for_a_server_slow_to_read(tmp_path):
    script = starved(tmp_path, "one_recv_echo", ONE_LATE_RECV)
    (record,) = sockspec_run(tmp_path, *server_cmd(script, "echo", "tcp"),
                             "--transport", "tcp", "wire_echo_every_byte_a_segment")
    assert record["outcome"] == "failed", record["evidence"]
    came_back = re.search(r"(\d+) bytes came back where 40 were sent", record["evidence"])
    assert came_back and int(came_back.group(1)) == 1, record["evidence"]


@needs_lab
def test_wire_head_bytes_wait_for_a_server_slow_to_read(tmp_path):
    """Kept from running for 0.5 s once, just before the head's last line ends: with
    pauses alone the rest of the head, blank line and all, was one recv() then."""
    patch = (
        "class Late:\n"
        "    def __init__(self, conn):\n"
        "        self.conn, self.seen, self.paused = conn, b'', False\n"
        "    def settimeout(self, seconds):\n"
        "        self.conn.settimeout(seconds)\n"
        "    def recv(self, size):\n"
        "        chunk = self.conn.recv(size)\n"
        "        self.seen += chunk\n"
        "        if not self.paused and self.seen.endswith(b'Host: 1'):\n"
        "            self.paused = True\n"
        "            time.sleep(0.5)\n"
        "        return chunk\n"
        "connection.read_request = (\n"
        "    lambda conn, limit: faulty.read_request_newest_chunk(Late(conn), limit))")
    script = starved(tmp_path, "head_end_in_newest_chunk_http", patch)
    (record,) = sockspec_run(tmp_path, *server_cmd(script, "http", "tcp"),
                             "--transport", "tcp", "wire_http_head_every_byte_a_segment")
    assert record["outcome"] == "failed", record["evidence"]
    waited = re.search(r"server read each byte alone: yes: .*longest wait ([0-9.]+) s",
                       record["evidence"])
    assert waited and float(waited.group(1)) >= 0.4, record["evidence"]


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_dribbled_bytes_wait_for_a_client_slow_to_read(tmp_path, transport):
    """One recv() per reply, made 0.8 s late. With 1 ms pauses alone, over TCP the whole
    300-byte reply had arrived by then and the client with the defect passed (over
    Unix the harness's dribble ran slower here: 71 bytes had)."""
    script = tmp_path / "client_one_recv_starved.py"
    script.write_text(
        "import sys, time\n"
        f"sys.path.insert(0, {str(FAULTY_DIR)!r})\n"
        "import _client_base as base\n"
        "import client_one_recv as faulty\n"
        "def late(sock):\n"
        "    time.sleep(0.8)\n"
        "    yield from faulty.receive_first_piece_only(sock)\n"
        "base.receive_all = late\n"
        "sys.exit(base.main())\n")
    address = "unix:{path}" if transport == "unix" else "{hostport}"
    command = shlex.join([sys.executable, str(script), "echo", address, "--file", "{in}",
                          "--timeout", "3"])
    (record,) = sockspec_run(tmp_path, "--client-cmd", command, "--profile", "echo",
                             "--transport", transport, "client_reads_one_byte_segments")
    assert record["outcome"] == "failed", record["evidence"]
    assert "got back 1 bytes" in record["evidence"], record["evidence"]   # the first byte alone
    said = re.search(r"client read each piece alone: (no: the kernel no longer had its "
                     r"socket|yes)", record["evidence"])
    assert said, record["evidence"]


@pytest.mark.parametrize("scenario", ["proto_requests_in_three_pieces",
                                      "proto_requests_one_byte_per_segment"])
def test_declared_pieces_wait_for_a_server_slow_to_read(tmp_path, scenario):
    """examples/kv's server that takes a command word from the first recv(), made 0.3 s
    late before each command's first recv(): with pauses alone (50 ms, 5 ms) the
    whole command had arrived by then, and the defect passed."""
    script = tmp_path / "verb_from_first_recv_starved.py"
    script.write_text(
        "import sys, time\n"
        f"sys.path.insert(0, {str(EXAMPLES / 'kv' / 'faulty')!r})\n"
        "import verb_from_first_recv as faulty\n"
        "class Late(faulty.VerbFromFirstRecv):\n"
        "    def read_message(self, conn, buffer):\n"
        "        if not buffer:\n"
        "            time.sleep(0.3)\n"
        "        return super().read_message(conn, buffer)\n"
        "sys.exit(faulty.main(server_class=Late))\n")
    outcome = run_families(tmp_path, "kv", [sys.executable, str(script)], ("tcp",),
                           families=(scenario,))
    (record,) = outcome.results()
    assert record["outcome"] == "failed", record["evidence"]
