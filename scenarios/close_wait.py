"""close-wait: a client's FIN, however late, makes the server close its end too.

When the peer's FIN arrives, the kernel moves the server's socket to
CLOSE_WAIT and recv() returns 0; the socket stays in CLOSE_WAIT, holding its
descriptor and its buffers, until the server calls close(). A server that
does not notice the end of the stream (it ignores recv() == 0, or waits for
the rest of a request that will never come) accumulates CLOSE_WAIT sockets
and descriptors until it hits EMFILE. The scenario's clients end in the ways
a real client does: FIN some time after their last bytes (and keep their own
end open, as a half-closed client does), or vanish with RST. It counts the
server's CLOSE_WAIT sockets on its port (/proc/PID/net/tcp{,6}, in the
server's own network namespace) and the descriptors of its processes
(/proc/PID/fd; for Unix sockets the descriptors alone).
"""

import time

from sockspec.catalogue import Family, scenario
from sockspec.drivers.load import settle_count
from sockspec.drivers.resources import close_all, open_idle, tcp_states_of_server
from sockspec.errors import SockspecError
from sockspec.transport import TcpAddress, half_close, recv_exactly, send_all
from sockspec.verdict import MUST, expect

CLOSE_WAIT = Family(
    name="close-wait",
    behaviour="after a client's FIN (or RST), however late, the server closes its end: no "
    "CLOSE_WAIT sockets or descriptors pile up",
    hint="recv() returning 0 is the peer's FIN: close() the socket (after sending what is "
    "still owed) on that path too, also in the middle of a request; a socket left "
    "unclosed stays in CLOSE_WAIT with its descriptor until the process exits",
)

CONNECT_TIMEOUT = 5.0
DELAYED_FIN_CLIENTS = 20
RESET_CLIENTS = 10
FIN_DELAY_S = 0.5             # between a client's last bytes and its FIN
SETTLE_STABLE_S = 1.0
SETTLE_TIMEOUT = 8.0
# Slack for a connection thread that closes a moment late, and for descriptors a
# server opens lazily.
CLOSE_WAIT_BOUND = 2
FD_TOLERANCE = 3
BASELINE_STABLE_S = 0.2
# All the echoes read back share this wait: a server that serves one client at a time
# would otherwise cost a full timeout per client (concurrency is another family's
# business; here a missing echo is only a fact).
READ_BACK_S = 5.0

ECHO_LINE = b"close-wait: one line, then a FIN half a second later\n"
HTTP_HALF = b"GET /close-wait.txt HTTP/1.0\r\nHost: sock"


def _close_wait(server, metrics, first_bytes: bytes, read_back: int) -> None:
    baseline = settle_count(server.fd_count, at_most=None, stable_for=BASELINE_STABLE_S,
                            timeout=SETTLE_TIMEOUT).value
    address = server.address
    late, late_errors = open_idle(address, DELAYED_FIN_CLIENTS, CONNECT_TIMEOUT,
                                  total=CONNECT_TIMEOUT)
    resets, reset_errors = open_idle(address, RESET_CLIENTS, CONNECT_TIMEOUT,
                                     total=CONNECT_TIMEOUT)
    problems = [*late_errors, *reset_errors]
    deadline = time.monotonic() + READ_BACK_S
    try:
        for sock in (*late, *resets):
            try:
                send_all(sock, first_bytes)
                if read_back:
                    sock.settimeout(max(0.01, deadline - time.monotonic()))
                    recv_exactly(sock, read_back)
            except (OSError, SockspecError) as exc:
                problems.append(str(exc))
        close_all(resets, reset=True)
        time.sleep(FIN_DELAY_S)
        for sock in late:
            try:
                half_close(sock)  # our FIN; our end stays open, as a half-closed client's does
            except OSError as exc:
                problems.append(f"shutdown: {exc}")
        pids = server.process.group_pids()
        if isinstance(address, TcpAddress):
            def close_waits() -> int:
                return tcp_states_of_server(server.process.group_pids(),
                                            address.port).get("CLOSE_WAIT", 0)
            waiting = settle_count(close_waits, at_most=0, stable_for=SETTLE_STABLE_S,
                                   timeout=SETTLE_TIMEOUT)
            states = tcp_states_of_server(pids, address.port)
        else:
            waiting, states = None, {}
        fds = settle_count(server.fd_count, at_most=baseline + FD_TOLERANCE,
                           stable_for=SETTLE_STABLE_S, timeout=SETTLE_TIMEOUT)
    finally:
        close_all(late)
        close_all(resets, reset=True)
    metrics.record("fd_growth", fds.value - baseline)
    facts = dict(
        clients=f"{DELAYED_FIN_CLIENTS} sent {len(first_bytes)} bytes, then FIN "
        f"{FIN_DELAY_S:g} s later (their end kept open); {RESET_CLIENTS} sent the same, then RST",
        client_problems=f"{len(problems)}, first: {problems[0]}" if problems else "none",
        descriptors_before=baseline,
        descriptors_after=f"{fds.value} (waited {fds.waited_s:.2f} s, {fds.how})",
        tcp_states_on_server_port="(a Unix socket: descriptors only)" if waiting is None
        else ", ".join(f"{k} {v}" for k, v in sorted(states.items())) or "none",
        where_to_look=f"/proc/{server.process.pid}/fd",
    )
    if waiting is not None:
        metrics.record("close_wait_sockets", waiting.value)
        expect(waiting.value <= CLOSE_WAIT_BOUND,
               f"{waiting.value} of the server's sockets stayed in CLOSE_WAIT after their "
               f"clients' FIN (bound {CLOSE_WAIT_BOUND})", **facts)
    expect(fds.value <= baseline + FD_TOLERANCE,
           f"the server holds {fds.value - baseline} more descriptors after its clients "
           f"sent FIN or RST (tolerance {FD_TOLERANCE})", **facts)


@scenario(CLOSE_WAIT, profiles=("echo",), fresh_server=True,
          level=MUST,
          reason="RFC 9293 3.6: after the peer's FIN the socket waits in CLOSE-WAIT for "
          "the server's close(); never closing leaks a descriptor per client")
def test_close_wait_echo(server, metrics):
    """Clients that FIN late or reset leave no CLOSE_WAIT socket or descriptor behind.

    Trigger: 20 clients send a line and read its echo (all within 5 s), then
    send FIN 0.5 s later and keep their end open; 10 more send a line and reset
    (RST).
    Verdict: within 8 s the server's port has at most 2 sockets in CLOSE_WAIT
    (TCP) and its processes hold at most 3 descriptors more than before.
    """
    _close_wait(server, metrics, ECHO_LINE, len(ECHO_LINE))


@scenario(CLOSE_WAIT, profiles=("http",), fresh_server=True,
          level=MUST,
          reason="RFC 9293 3.6: after the peer's FIN the socket waits in CLOSE-WAIT for "
          "the server's close(); never closing leaks a descriptor per client")
def test_close_wait_http(server, metrics):
    """Clients that FIN late in the middle of a head, or reset, leave nothing behind.

    Trigger: 20 clients send half a request head, then FIN 0.5 s later (their
    end kept open); 10 more send half a head and reset (RST).
    Verdict: within 8 s the server's port has at most 2 sockets in CLOSE_WAIT
    (TCP) and its processes hold at most 3 descriptors more than before.
    """
    _close_wait(server, metrics, HTTP_HALF, 0)
