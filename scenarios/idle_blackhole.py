"""idle-blackhole: a client that sends half a request and then nothing stalls nobody else.

A client on a dead link, a crashed peer or a slowloris attacker sends the
start of a request and then nothing at all, and keeps the connection open. A
server whose one thread waits in recv() for the rest of that request (a
select() loop with blocking reads, a "read the head in the accept loop, then
hand off" design) serves no one else until the request completes or its idle
timeout, if it has one, expires. The scenario holds such a connection, checks
that another client is served, and then watches the held connection for a
while to measure the server's own idle timeout.
"""

import socket
import time

from sockspec.catalogue import Family, scenario
from sockspec.drivers.load import echo_then_close, get_then_close
from sockspec.errors import SockspecError
from sockspec.transport import connect, send_all
from sockspec.verdict import SHOULD, expect

IDLE_BLACKHOLE = Family(
    name="idle-blackhole",
    behaviour="a client that sends half a request and then nothing does not stop others "
    "from being served",
    hint="never wait for one client's bytes in the thread that serves everyone: give each "
    "connection its own thread or process, or use non-blocking sockets with poll()/epoll "
    "and a per-connection input buffer; bound each client with an idle timeout "
    "(SO_RCVTIMEO, or a timer per connection) and close() it when it expires",
)

CONNECT_TIMEOUT = 5.0
# Another client's exchange takes well under a millisecond; 2 s tolerates a very busy
# machine and still catches a server that waits for the silent client.
OTHER_CLIENT_LIMIT_S = 2.0
# How long the silent connection is watched for the server's idle timeout (a server
# with none, or with a longer one, is not at fault: the timeout is only reported).
IDLE_WATCH_S = 1.5

ECHO_HALF = b"idle-blackhole: the first half of a line, and then noth"
HTTP_HALF = b"GET /idle-blackhole.txt HTTP/1.0\r\nHost: sockspec\r\nUser-Ag"
OTHER_PING = b"sockspec ping beside a silent client\n"
OTHER_FILE = "idle-blackhole-other.txt"
OTHER_BODY = b"served while another client stays silent\n" * 4


def _watch_until_closed(sock: socket.socket, sent_at: float) -> tuple[float | None, str]:
    """Read (and drop) what comes until the server ends the connection or the watch ends."""
    deadline = sent_at + IDLE_WATCH_S
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None, f"still open {IDLE_WATCH_S:g} s after the half request"
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError as exc:
            return time.monotonic() - sent_at, f"reset ({exc.strerror})"
        if not chunk:
            return time.monotonic() - sent_at, "closed with FIN"


def _blackhole(server, metrics, half: bytes, other) -> None:
    silent = connect(server.address, CONNECT_TIMEOUT, nodelay=server.transport != "unix")
    try:
        send_all(silent, half)
        sent_at = time.monotonic()
        started = time.perf_counter()
        try:
            other()
            problem = None
        except SockspecError as exc:
            problem = str(exc)
        other_s = time.perf_counter() - started
        metrics.record("other_client_ms", other_s * 1000)
        expect(problem is None and other_s <= OTHER_CLIENT_LIMIT_S,
               f"another client was not served within {OTHER_CLIENT_LIMIT_S:g} s while one "
               f"client had sent half a request and then nothing",
               other_client=problem or f"served after {other_s:.2f} s",
               silent_client=f"sent {len(half)} bytes: {half!r}, then nothing; still open")
        closed_after, _how = _watch_until_closed(silent, sent_at)
    finally:
        silent.close()
    metrics.record("idle_watch_s", IDLE_WATCH_S)
    if closed_after is not None:
        metrics.record("idle_timeout_s", closed_after)


@scenario(IDLE_BLACKHOLE, profiles=("echo",), fresh_server=True, needs_process_control=False,
          level=SHOULD,
          reason="no RFC requires serving others while one request is incomplete; "
          "isolating a silent client (slowloris hardening) is common practice")
def test_idle_blackhole_echo(server, metrics):
    """Another client's echo comes back within 2 s while one client sent half a line.

    Trigger: one client sends the first 55 bytes of a line and then nothing,
    keeping its connection open; a second client connects and sends one line.
    Verdict: the second line comes back within 2 s. The silent connection is
    then watched for 1.5 s: if the server closes it,
    metric idle_timeout_s says when (reported, not judged).
    """
    _blackhole(server, metrics, ECHO_HALF,
               lambda: echo_then_close(server.address, OTHER_PING, OTHER_CLIENT_LIMIT_S))


@scenario(IDLE_BLACKHOLE, profiles=("http",), fresh_server=True, needs_process_control=False,
          level=SHOULD,
          reason="no RFC requires serving others while one request is incomplete; "
          "isolating a silent client (slowloris hardening) is common practice")
def test_idle_blackhole_http(server, metrics):
    """Another client's GET is answered within 2 s while one client sent half a head.

    Trigger: one client sends the request line and half the headers, then
    nothing, keeping its connection open; a second client GETs a small file.
    Verdict: the second client gets 200 and the file within 2 s. The silent
    connection is then watched for 1.5 s: if the
    server closes it, metric idle_timeout_s says when (reported, not judged).
    """
    server.put_file(OTHER_FILE, OTHER_BODY)
    _blackhole(server, metrics, HTTP_HALF,
               lambda: get_then_close(server.address, f"/{OTHER_FILE}", OTHER_BODY,
                                      OTHER_CLIENT_LIMIT_S))
