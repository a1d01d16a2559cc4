"""The end of a Unix stream is judged once the server's socket is released.

Over a Unix stream a server's shutdown(SHUT_WR) gives the client EOF at once,
while its close() with unread input makes the client's next read fail with
ECONNRESET only when its last descriptor goes. A client that reads EOF in
between calls the end FIN: a server the scheduler held between its two calls
passed graceful-close (a fresh CI run saw close_without_drain_http pass once).
These tests make the hold certain and show the defect still fails.
"""

from __future__ import annotations

import os
import socket
import threading
import time

from packets_support import sockspec_run
from sockspec_runner import server_cmd
from test_read_alone import starved

from sockspec.drivers.closing import settle_unix_end
from sockspec.drivers.peer import unix_peer_inode
from sockspec.transport import StreamEnd, read_until_end


def eof_read(client: socket.socket) -> StreamEnd:
    _, end = read_until_end(client, 2.0, 1024)
    assert end is StreamEnd.FIN
    return end


def test_unix_peer_inode_is_the_peers_until_the_kernel_releases_it():
    client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with client:
        assert unix_peer_inode(client) == os.fstat(server.fileno()).st_ino
        server.shutdown(socket.SHUT_WR)
        assert unix_peer_inode(client) != 0        # shut down, not released
        twin = server.dup()
        server.close()
        assert unix_peer_inode(client) != 0        # one descriptor still holds it
        twin.close()
        assert unix_peer_inode(client) == 0


def test_an_eof_before_a_close_with_unread_input_becomes_a_reset():
    client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with client:
        client.sendall(b"pipelined request the server never reads")
        server.shutdown(socket.SHUT_WR)
        end = eof_read(client)                      # EOF, while the server still holds on
        closer = threading.Timer(0.3, server.close)
        closer.start()
        settled, words = settle_unix_end(client, end, 5.0)
        closer.join()
    assert settled is StreamEnd.RST, words
    assert words.startswith("after EOF, ECONNRESET once its socket was released ("), words


def test_an_eof_from_a_server_that_drains_stays_fin():
    client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    def drain_then_close() -> None:
        while server.recv(4096):
            pass                                    # until our FIN
        server.close()

    with client:
        client.sendall(b"pipelined request")
        server.shutdown(socket.SHUT_WR)
        end = eof_read(client)
        drainer = threading.Thread(target=drain_then_close)
        drainer.start()
        settled, words = settle_unix_end(client, end, 5.0)
        drainer.join()
    assert settled is StreamEnd.FIN, words
    assert words.startswith("released ") and words.endswith("with no ECONNRESET pending")


def test_a_server_that_keeps_its_socket_open_costs_the_bound_and_stays_fin():
    client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with client, server:
        server.shutdown(socket.SHUT_WR)
        end = eof_read(client)
        began = time.monotonic()
        settled, words = settle_unix_end(client, end, 0.2)
        assert 0.2 <= time.monotonic() - began < 2.0
    assert settled is StreamEnd.FIN
    assert words == "its socket was still open 0.2 s after EOF and our FIN"


def test_tcp_and_other_ends_are_left_as_they_are():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    with client, server:
        assert settle_unix_end(client, StreamEnd.FIN, 5.0) == (StreamEnd.FIN, "not needed")
    client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with client, server:
        assert settle_unix_end(client, StreamEnd.TIMEOUT, 5.0) == (StreamEnd.TIMEOUT,
                                                                    "not needed")


def test_close_without_draining_held_between_shutdown_and_close_still_fails(tmp_path):
    """close_without_drain_http kept from running for 1 s between its shutdown(SHUT_WR)
    and its close(): the client read the whole body and EOF in that second, and
    without the wait for the release the defect passed."""
    patch = (
        "def held(conn, config):\n"
        "    faulty.shut_down_without_draining(conn, config)\n"
        "    time.sleep(1.0)\n"
        "connection.close_gracefully = held")
    script = starved(tmp_path, "close_without_drain_http", patch)
    (record,) = sockspec_run(tmp_path, *server_cmd(script, "http", "unix"),
                             "--transport", "unix", "http_close_with_pipelined_request")
    assert record["outcome"] == "failed", record["evidence"]
    assert "after EOF, ECONNRESET once its socket was released" in record["evidence"], \
        record["evidence"]
