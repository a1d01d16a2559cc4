"""fd-leak: every finished connection gives its descriptor back, however the client left.

A server that forgets close() on one path (the client closed before sending
anything, reset, a parse error) keeps one descriptor per such connection and
runs into EMFILE after a few thousand clients. The scenario counts the
descriptors of the server's process group (/proc/PID/fd) before and after a
run of connections that end in the common ways, waiting for the count to
settle: a connection's thread may close its socket a moment after the client
is gone.
"""

from collections.abc import Callable
from functools import partial

from sockspec.catalogue import Family, scenario
from sockspec.drivers.load import (
    close_without_sending,
    echo_then_close,
    echo_then_reset,
    get_then_close,
    probe_service,
    reset_mid_request,
    run_in_sequence,
    settle_count,
)
from sockspec.errors import SockspecError
from sockspec.verdict import MUST, expect, fail

FD_LEAK = Family(
    name="fd-leak",
    behaviour="the server closes the descriptor of every finished connection",
    hint="close() the accepted socket on every path (normal end, EOF before any request, "
    "reset, error): put the close in a finally block or a with-statement around the "
    "whole connection handler",
)

CONNECTIONS = 100
CONNECT_TIMEOUT = 5.0
RUN_TIME_LIMIT = 60.0           # 100 connections take well under a second
PROBE_TIMEOUT = 5.0
# Slack for descriptors the server may open lazily (a log file, a pipe, /dev/urandom).
FD_TOLERANCE = 3
BASELINE_STABLE_S = 0.2
SETTLE_STABLE_S = 1.0           # unchanged this long: whatever remains open stays open
SETTLE_TIMEOUT = 8.0            # the reference closes at once; a graceful close may linger
PAYLOAD = b"sockspec fd-leak line\n"
SMALL_FILE = "fd-leak.txt"
SMALL_BODY = b"sockspec fd-leak body\n" * 4


def _expect_no_leak(server, metrics, kinds: list[tuple[str, Callable[[], None]]]) -> None:
    """Run CONNECTIONS connections cycling through ``kinds``; fds must return to the baseline."""
    warm_up = probe_service(server, PROBE_TIMEOUT)
    expect(warm_up.ok, "the server did not serve a first request", probe=warm_up.detail)
    baseline = settle_count(server.fd_count, at_most=None, stable_for=BASELINE_STABLE_S,
                            timeout=SETTLE_TIMEOUT).value
    client_problems: list[str] = []

    def one_connection(index: int) -> None:
        name, client = kinds[index % len(kinds)]
        try:
            client()
        except (SockspecError, OSError) as exc:  # evidence only: this family counts fds
            client_problems.append(f"connection #{index + 1} ({name}): {exc}")

    run = run_in_sequence(CONNECTIONS, one_connection, time_limit=RUN_TIME_LIMIT)
    mix = ", ".join(f"{len(range(k, CONNECTIONS, len(kinds)))}x {name}"
                    for k, (name, _) in enumerate(kinds))
    problems = (f"{len(client_problems)}, first: {client_problems[0]}" if client_problems
                else "none")
    if run.stopped_early:
        fail("the run of connections did not finish in time, so descriptors cannot be compared",
             problem=run.stopped_early, connections=mix, client_problems=problems)
    expect(server.alive(), "the server died during the run, so its descriptors cannot be counted",
           connections=mix, client_problems=problems)
    settled = settle_count(server.fd_count, at_most=baseline + FD_TOLERANCE,
                           stable_for=SETTLE_STABLE_S, timeout=SETTLE_TIMEOUT)
    metrics.record("fd_growth", settled.value - baseline)
    expect(settled.value <= baseline + FD_TOLERANCE,
           f"the server holds {settled.value - baseline} more descriptors after "
           f"{CONNECTIONS} finished connections",
           descriptors_before=baseline, descriptors_after=settled.value,
           tolerance=FD_TOLERANCE, connections=mix, client_problems=problems,
           waited_for_the_count_to_settle_s=f"{settled.waited_s:.2f} ({settled.how})",
           where_to_look=f"/proc/{server.process.pid}/fd")


@scenario(FD_LEAK, profiles=("echo",), fresh_server=True,
          level=MUST,
          reason="a descriptor never closed is a leak (POSIX close()); the server hits "
          "EMFILE after enough clients")
def test_fd_leak_echo(server, metrics):
    """After 100 connections that end in three ways, the server holds no more descriptors.

    Trigger: 100 sequential connections, in turn: one echo then close();
    connect and close() without sending anything; one echo then RST
    (SO_LINGER {1, 0}).
    Verdict: once its count settles, the server's process group holds at most
    3 descriptors more than before.
    Avoids: half-close (every FIN or RST comes after the echo, or instead of any data).
    """
    address = server.address
    _expect_no_leak(server, metrics, [
        ("echo, close()", partial(echo_then_close, address, PAYLOAD, CONNECT_TIMEOUT)),
        ("close() without sending", partial(close_without_sending, address, CONNECT_TIMEOUT)),
        ("echo, RST", partial(echo_then_reset, address, PAYLOAD, CONNECT_TIMEOUT)),
    ])


@scenario(FD_LEAK, profiles=("http",), fresh_server=True,
          level=MUST,
          reason="a descriptor never closed is a leak (POSIX close()); the server hits "
          "EMFILE after enough clients")
def test_fd_leak_http(server, metrics):
    """After 100 connections that end in three ways, the server holds no more descriptors.

    Trigger: 100 sequential connections, in turn: GET of a small file read to
    the end; connect and close() without sending anything; half a request
    head then RST (SO_LINGER {1, 0}).
    Verdict: once its count settles, the server's process group holds at most
    3 descriptors more than before.
    Avoids: half-close (every FIN or RST comes after the response, or instead of a whole
    request).
    """
    server.put_file(SMALL_FILE, SMALL_BODY)
    address = server.address
    _expect_no_leak(server, metrics, [
        ("GET, read to EOF", partial(get_then_close, address, f"/{SMALL_FILE}", SMALL_BODY,
                                     CONNECT_TIMEOUT)),
        ("close() without sending", partial(close_without_sending, address, CONNECT_TIMEOUT)),
        ("half a request, RST", partial(reset_mid_request, address, CONNECT_TIMEOUT)),
    ])
