"""restart: after kill -9 with clients connected, the server starts again on the same port.

kill -9 closes every socket of the process. Connections whose clients stay
open keep the port in the kernel's tables (server side in FIN_WAIT2, or
TIME_WAIT for 60 s once the client closes), and bind() to that port fails
with EADDRINUSE unless the new listening socket sets SO_REUSEADDR first. TCP
only: a Unix socket path has no such leftovers (the stale file is the
server's to replace).
"""

import socket
import time

from sockspec.catalogue import Family, scenario
from sockspec.drivers.load import (
    fill_until_blocked,
    probe_service,
    tcp_states_on_port,
    unfinished_get_request,
)
from sockspec.errors import ServerStartError, SockspecError
from sockspec.reference.http_fetch import build_get_request, host_header
from sockspec.transport import connect, recv_exactly, send_all
from sockspec.verdict import MUST, SHOULD, expect, fail

RESTART = Family(
    name="restart",
    behaviour="after kill -9 with clients connected, a restart on the same port is ready at once",
    hint="set SO_REUSEADDR on the listening socket before bind(): without it bind() fails "
    "with EADDRINUSE while the killed server's connections sit in FIN_WAIT2/TIME_WAIT (60 s)",
)

NOT_ON_UNIX = {"unix": "a Unix socket path keeps no connection state after kill -9: "
                       "FIN_WAIT2/TIME_WAIT and SO_REUSEADDR are TCP ideas"}
CONNECT_TIMEOUT = 5.0
IDLE_CLIENTS = 3
IDLE_LINE = b"idle client\n"
BUSY_FILL_BYTES = 8 * 1024 * 1024
FILL_STALL_S = 0.1
FILL_TIME_LIMIT = 5.0
# A Python server is ready within a second even on a loaded machine; "a few
# seconds" leaves room for a slower start without hiding a wait for TIME_WAIT (60 s).
RESTART_READY_LIMIT_S = 5.0
PROBE_TIMEOUT = 5.0
LARGE_FILE_BYTES = 64 * 1024 * 1024


def _kill_restart_and_probe(server, metrics, clients_connected: str) -> None:
    """kill -9 the server, start it again on the same address; it must be ready and serve."""
    port = server.address.port
    server.kill_hard()
    left_behind = tcp_states_on_port(port)
    started = time.perf_counter()
    try:
        server.start_again()
    except ServerStartError as exc:
        fail("the server could not start again on its port after kill -9",
             start_error=str(exc), tried_for_s=f"{time.perf_counter() - started:.2f}",
             clients_connected_at_kill=clients_connected,
             sockets_on_the_port_after_kill=left_behind or "none")
    ready_s = time.perf_counter() - started
    metrics.record("restart_ready_s", ready_s)
    expect(ready_s <= RESTART_READY_LIMIT_S,
           f"the restarted server took {ready_s:.2f} s to accept "
           f"(limit {RESTART_READY_LIMIT_S:g} s)",
           clients_connected_at_kill=clients_connected,
           sockets_on_the_port_after_kill=left_behind or "none")
    probe = probe_service(server, PROBE_TIMEOUT)
    expect(probe.ok, "the restarted server does not serve a fresh request", level=MUST,
           fresh_request=probe.detail, clients_connected_at_kill=clients_connected)


@scenario(RESTART, profiles=("echo",), fresh_server=True, not_on=NOT_ON_UNIX,
          level=SHOULD,
          reason="SO_REUSEADDR is universal practice; without it RFC 9293's TIME-WAIT "
          "legitimately blocks bind() for 60 s")
def test_restart_echo_after_kill(server, metrics):
    """After kill -9 with idle clients and one mid-echo, a restart is ready within 5 s.

    Trigger: one client echoes a line (so it surely was accepted) and two more
    connect, all three stay idle; a fourth sends up to 8 MiB without reading,
    so the server is in the middle of echoing to it; then SIGKILL to the
    server's process group and the same command started again.
    Verdict: it accepts on the same port within 5 s and echoes a fresh line.
    Avoids: half-close and judging the killed connections: only the restart and a fresh echo
    are judged.
    """
    clients: list[socket.socket] = []
    try:
        first = connect(server.address, CONNECT_TIMEOUT)
        clients.append(first)
        try:  # not judged: it only makes sure one connection was accepted before the kill
            send_all(first, IDLE_LINE)
            recv_exactly(first, len(IDLE_LINE))
        except SockspecError:
            pass
        clients += [connect(server.address, CONNECT_TIMEOUT) for _ in range(IDLE_CLIENTS - 1)]
        busy = connect(server.address, CONNECT_TIMEOUT)
        clients.append(busy)
        fill = fill_until_blocked(busy, max_bytes=BUSY_FILL_BYTES, stall_s=FILL_STALL_S,
                                  time_limit=FILL_TIME_LIMIT)
        _kill_restart_and_probe(server, metrics, f"{IDLE_CLIENTS} idle, 1 mid-echo "
                                f"({fill.sent} bytes sent, none read back)")
    finally:
        for sock in clients:
            sock.close()


@scenario(RESTART, profiles=("http",), fresh_server=True, not_on=NOT_ON_UNIX,
          level=SHOULD,
          reason="SO_REUSEADDR is universal practice; without it RFC 9293's TIME-WAIT "
          "legitimately blocks bind() for 60 s")
def test_restart_http_after_kill(server, metrics):
    """After kill -9 with idle clients and one mid-download, a restart is ready within 5 s.

    Trigger: one client starts downloading a 64 MiB file and stops reading;
    three more connect and send half a request head each, and stay; then
    SIGKILL to the server's process group and the same command started again.
    Verdict: it accepts on the same port within 5 s and serves a small file.
    Avoids: half-close and judging the killed connections: only the restart and a fresh GET
    are judged.
    """
    server.put_sparse_file("large.bin", LARGE_FILE_BYTES, b"end of the large file\n")
    clients: list[socket.socket] = []
    try:
        busy = connect(server.address, CONNECT_TIMEOUT)
        clients.append(busy)
        host = host_header(server.address)
        send_all(busy, build_get_request("/large.bin", host=host))
        try:
            recv_exactly(busy, 64 * 1024)
            download = "64 KiB of the response read, then no more"
        except SockspecError as exc:
            download = f"the download did not start: {exc}"
        for _ in range(IDLE_CLIENTS):
            clients.append(connect(server.address, CONNECT_TIMEOUT))
            send_all(clients[-1], unfinished_get_request("/large.bin", host))
        _kill_restart_and_probe(server, metrics, f"{IDLE_CLIENTS} idle, 1 mid-download "
                                f"({download})")
    finally:
        for sock in clients:
            sock.close()
