"""client-abort: clients that leave rudely neither kill nor wedge the server.

A client may reset (SO_LINGER {1, 0} then close()), close with data unread, or
vanish in the middle of a download. The server's next send() on that
connection then fails with ECONNRESET or EPIPE; EPIPE also raises SIGPIPE,
whose default action kills the whole process. Each scenario triggers such
endings, waits until the server has dealt with them (its descriptor count is
back to where it was, or it has died), then checks that the process is alive
and that a fresh request is served.
"""

import socket
from collections.abc import Callable
from functools import partial

from sockspec.catalogue import Family, scenario
from sockspec.drivers.load import Probe, fill_until_blocked, probe_service, settle_count
from sockspec.drivers.owed import leave_while_echo_owed
from sockspec.errors import SockspecError
from sockspec.process import describe_exit
from sockspec.reference.http_fetch import build_get_request, host_header
from sockspec.transport import (
    TcpAddress,
    abort,
    connect,
    describe_os_error,
    half_close,
    recv_exactly,
    send_all,
)
from sockspec.verdict import MUST, expect

CLIENT_ABORT = Family(
    name="client-abort",
    behaviour="clients that reset or vanish mid-exchange neither kill nor wedge the server",
    hint="a send() to a peer that reset fails with EPIPE and raises SIGPIPE, which kills "
    "the process by default: ignore it (signal(SIGPIPE, SIG_IGN)) or send with "
    "MSG_NOSIGNAL, and treat EPIPE/ECONNRESET as the end of that one connection",
    cites="ends",
)

CONNECT_TIMEOUT = 5.0
REPEATS = 2                     # each rude ending twice: the second meets a warmed-up server
LARGE_SEND_BYTES = 4 * 1024 * 1024
FILL_STALL_S = 0.1              # no room for this long: every buffer on the way is full
FILL_TIME_LIMIT = 5.0
# Enough that the echo takes several send()s, little enough to be sent whole
# into the buffers of any transport before the server echoes.
FIN_SEND_BYTES = 512 * 1024
MID_ECHO_BYTES = 128 * 1024     # fits in the buffers of any transport: send_all cannot block
MID_ECHO_READ = 16 * 1024
# Longer than the TCP send-buffer ceiling (4 MiB, tcp_wmem max) plus our receive
# buffer, so the server is still sending when we reset; sparse, so it costs no disk.
DOWNLOAD_BYTES = 64 * 1024 * 1024
DOWNLOAD_READ = 64 * 1024
# The aborted connections are over for the server once its descriptor count is
# back at the baseline (or it died); a server that leaks is fd-leak's business,
# so past these bounds we judge anyway.
SETTLE_TIMEOUT = 5.0
SETTLE_STABLE_S = 1.0
BASELINE_STABLE_S = 0.2
PROBE_TIMEOUT = 5.0


def _baseline_fds(server) -> int:
    warm_up = probe_service(server, PROBE_TIMEOUT)
    expect(warm_up.ok, "the server did not serve a first request", probe=warm_up.detail)
    return settle_count(server.fd_count, at_most=None, stable_for=BASELINE_STABLE_S,
                        timeout=SETTLE_TIMEOUT).value


def _run_rude_clients(server, clients: list[tuple[str, Callable[[], None]]]) -> list[str]:
    """Run each (name, client) in turn; note what each one saw go wrong.

    A client's own trouble (reset, refused) is evidence, not the verdict: the
    verdict is whether the server lives and serves afterwards. Stops early once
    the server is dead.
    """
    notes = []
    for number, (name, client) in enumerate(clients, start=1):
        try:
            client()
        except (SockspecError, OSError) as exc:
            reason = str(exc) if isinstance(exc, SockspecError) else describe_os_error(exc)
            notes.append(f"client {number} ({name}): {reason}")
            if not server.alive():
                break
    return notes


def _expect_survived(server, baseline_fds: int, trigger: str, client_notes: list[str]) -> None:
    """Wait for the server to finish the aborted connections; it must live and serve."""
    settled = settle_count(server.fd_count, at_most=baseline_fds, stable_for=SETTLE_STABLE_S,
                           timeout=SETTLE_TIMEOUT)
    notes = "; ".join(client_notes) or "none"
    _expect_alive(server, trigger, notes, settled.waited_s)
    probe: Probe = probe_service(server, PROBE_TIMEOUT)
    expect(probe.ok, "the server no longer serves a fresh request after clients aborted",
           trigger=trigger, fresh_request=probe.detail, what_the_rude_clients_saw=notes,
           server_alive="yes" if server.alive() else "no")
    _expect_alive(server, trigger, notes, settled.waited_s + probe.elapsed_s)


def _expect_alive(server, trigger: str, notes: str, observed_s: float) -> None:
    status = server.process.exit_status()
    expect(server.alive(), "the server process died after clients aborted their connections",
           trigger=trigger,
           death="the process " + (describe_exit(status) if status is not None else "is gone"),
           what_the_rude_clients_saw=notes, observed_within_s=f"{observed_s:.2f}")


def _reset_at_once(address) -> None:
    abort(connect(address, CONNECT_TIMEOUT))


def _leave_while_echo_owed(address, seen: list[str]) -> None:
    seen.append(leave_while_echo_owed(address, CONNECT_TIMEOUT).describe())


def _reset_mid_echo(address) -> None:
    sock = connect(address, CONNECT_TIMEOUT)
    try:
        send_all(sock, b"m" * MID_ECHO_BYTES)
        recv_exactly(sock, MID_ECHO_READ)
    finally:
        abort(sock)


def _fill_then_close(address, max_bytes: int, fin_first: bool, sent: list[int]) -> None:
    with connect(address, CONNECT_TIMEOUT) as sock:
        fill = fill_until_blocked(sock, max_bytes=max_bytes, stall_s=FILL_STALL_S,
                                  time_limit=FILL_TIME_LIMIT)
        sent.append(fill.sent)
        if fin_first:
            half_close(sock)


def _download_then_leave(address, request: bytes, fin_first: bool, read: bool,
                         leave: Callable[[socket.socket], None]) -> None:
    sock = connect(address, CONNECT_TIMEOUT)
    try:
        send_all(sock, request)
        if fin_first:
            half_close(sock)
        if read:
            recv_exactly(sock, DOWNLOAD_READ)
    finally:
        leave(sock)


@scenario(CLIENT_ABORT, profiles=("echo",), fresh_server=True,
          level=MUST,
          reason="one client's reset ends that connection only (POSIX EPIPE/ECONNRESET, "
          "RFC 9293 3.10.7); a server killed by it stops serving everyone")
def test_client_abort_echo_reset(server):
    """Clients that reset (SO_LINGER {1, 0}, close) at any moment leave the server serving.

    Trigger, twice each: reset right after connecting; send 128 KiB, read
    16 KiB of the echo, reset; leave while an echo is owed and not yet written,
    so that the server's next send() certainly fails with EPIPE (SIGPIPE if it
    is not ignored): over TCP our FIN is acknowledged while its echo is
    blocked behind our full receive buffer, then RST; over a Unix socket we
    shut our reading side (shutdown(SHUT_RD)) before sending
    (harness/drivers/owed.py has the kernel facts).
    Verdict: the process is alive and a fresh echo comes back whole.
    Avoids: judging what the rude clients receive: their FIN or RST is the trigger, only the
    server's survival is judged.
    """
    baseline = _baseline_fds(server)
    address, owed = server.address, []
    how = ("FIN acknowledged while the echo is blocked, then RST"
           if isinstance(address, TcpAddress) else "SHUT_RD, then send and close")
    rude_clients = [("reset at once", partial(_reset_at_once, address)),
                    ("RST mid-echo", partial(_reset_mid_echo, address)),
                    (f"echo owed: {how}", partial(_leave_while_echo_owed, address, owed))
                    ] * REPEATS
    notes = _run_rude_clients(server, rude_clients)
    _expect_survived(server, baseline, f"{REPEATS}x: reset at once; {MID_ECHO_BYTES} bytes, "
                     f"{MID_ECHO_READ} read back, RST; left while an echo was owed ({how}: "
                     f"{'; '.join(owed) or 'never reached'})", notes)


@scenario(CLIENT_ABORT, profiles=("echo",), fresh_server=True,
          level=MUST,
          reason="one client's close with data unread ends that connection only (POSIX "
          "EPIPE, RFC 9293 3.10.7)")
def test_client_abort_echo_close_unread(server):
    """Clients that send a lot and close without reading the echo leave the server serving.

    Trigger, twice each: send up to 4 MiB without reading (until every buffer
    is full), then close(); send up to 512 KiB, half-close, then close() with
    the echo unread (TCP answers the echo still coming with RST, which the
    server, past our FIN, meets as EPIPE).
    Verdict: the process is alive and a fresh echo comes back whole.
    Avoids: judging what the rude clients receive: their FIN or close is the trigger, only
    the server's survival is judged.
    """
    baseline = _baseline_fds(server)
    address, sent = server.address, []
    rude_clients = [
        ("fill, close", partial(_fill_then_close, address, LARGE_SEND_BYTES, False, sent)),
        ("fill, FIN, close", partial(_fill_then_close, address, FIN_SEND_BYTES, True, sent))]
    notes = _run_rude_clients(server, rude_clients * REPEATS)
    _expect_survived(server, baseline, f"{REPEATS}x: up to {LARGE_SEND_BYTES} bytes unread then "
                     f"close(); up to {FIN_SEND_BYTES} bytes + FIN, then close() with the echo "
                     f"unread (bytes sent: {sent})", notes)


@scenario(CLIENT_ABORT, profiles=("http",), fresh_server=True,
          level=MUST,
          reason="an aborted download ends that connection only (POSIX EPIPE/SIGPIPE, RFC "
          "9293 3.10.7)")
def test_client_abort_download(server):
    """Clients that abort a large download mid-body leave the server serving.

    Trigger, twice each, on a 64 MiB file: GET, half-close, read 64 KiB,
    reset (the server, past our FIN, gets RST: its next sendfile()/send()
    fails with EPIPE); GET, read 64 KiB, reset; GET, read 64 KiB, close();
    GET and close() at once.
    Verdict: the process is alive and a fresh GET of a small file is served whole.
    Avoids: judging the responses: the clients' FIN, RST or close is the trigger, only the
    server's survival is judged.
    """
    server.put_sparse_file("large.bin", DOWNLOAD_BYTES, b"end of the large file\n")
    request = build_get_request("/large.bin", host=host_header(server.address))
    baseline = _baseline_fds(server)
    address = server.address
    leave = partial(_download_then_leave, address, request)
    rude_clients = [("GET + FIN, read, RST", partial(leave, True, True, abort)),
                    ("GET, read, RST", partial(leave, False, True, abort)),
                    ("GET, read, close()", partial(leave, False, True, socket.socket.close)),
                    ("GET, close()", partial(leave, False, False, socket.socket.close))]
    notes = _run_rude_clients(server, rude_clients * REPEATS)
    _expect_survived(server, baseline, f"{REPEATS}x on a {DOWNLOAD_BYTES}-byte file: GET + FIN, "
                     f"{DOWNLOAD_READ} bytes read, RST; GET, {DOWNLOAD_READ} read, RST; "
                     f"GET, {DOWNLOAD_READ} read, close(); GET, close()", notes)
