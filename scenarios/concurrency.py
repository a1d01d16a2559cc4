"""concurrency: clients connected at the same time are all served, none waits for another."""

from sockspec.catalogue import Family, scenario
from sockspec.drivers.streams import echo_many_at_once, start_stalled_download
from sockspec.errors import SockspecError
from sockspec.reference.client import build_get_request, fetch, host_header
from sockspec.reference.stream_digest import bytes_digest
from sockspec.verdict import MUST, SHOULD, expect, fail

CONCURRENCY = Family(
    name="concurrency",
    behaviour="many clients connected at the same time are all served",
    hint="serving a connection inline in the accept loop blocks every other client: "
    "after accept() hand the connection to a thread, a process, or an event loop "
    "(poll/epoll with non-blocking sockets) and return to accept() at once",
)

SIMULTANEOUS_CLIENTS = 20
# One deadline for the whole group: connecting 20 clients and 20 short echoes
# take milliseconds; the rest is slack for a loaded machine.
ALL_ECHOES_TIMEOUT = 5.0
# Larger than the 4 MiB TCP send-buffer ceiling (tcp_wmem max on this kernel)
# plus the stalled client's limited receive buffer, so the server's send for
# the first download must block.
STALLED_FILE_BYTES = 16 * 1024 * 1024
STALLED_RECEIVE_BUFFER = 64 * 1024
FIRST_RESPONSE_TIMEOUT = 5.0
SECOND_DOWNLOAD_TIMEOUT = 5.0


@scenario(CONCURRENCY, profiles=("echo",),
          level=SHOULD,
          reason="no RFC requires concurrent service (an iterative server is a textbook "
          "design); serving clients at once is common practice")
def test_echo_twenty_clients_at_once(server):
    """Twenty clients connected at the same time each get their own echo.

    Trigger: 20 connections are opened and kept open; each sends one line.
    Verdict: every line comes back intact on its own connection before one
    shared deadline, while all 20 connections are still open.
    Avoids: half-close (no client sends a FIN before its echo is in) and judging how the
    streams end.
    """
    result = echo_many_at_once(server.address, SIMULTANEOUS_CLIENTS, ALL_ECHOES_TIMEOUT)
    expect(
        len(result.echoed) == SIMULTANEOUS_CLIENTS,
        f"only {len(result.echoed)} of {SIMULTANEOUS_CLIENTS} simultaneously connected "
        f"clients got their echo within {ALL_ECHOES_TIMEOUT:g} s",
        clients_echoed=list(result.echoed),
        clients_without_any_answer=list(result.silent),
        clients_with_a_wrong_answer=list(result.wrong) or "none",
        elapsed_s=f"{result.elapsed_s:.3f}",
    )


@scenario(CONCURRENCY, profiles=("http",),
          level=SHOULD,
          reason="no RFC requires concurrent service; serving one client while another "
          "stalls is common practice")
def test_http_download_while_another_is_stalled(server):
    """A second download is served while a first, large one is stalled by its reader.

    Trigger: client A requests a 16 MiB file, sees the response begin, then
    stops reading (its receive buffer is limited) and keeps the connection
    open, so the server's send to A blocks; client B then downloads a small file.
    Verdict: B gets 200 and the whole file, with the right digest, in time.
    Avoids: half-close and judging how the streams end (reading stops at Content-Length).
    """
    server.put_sparse_file("stalled.bin", STALLED_FILE_BYTES, b"end of the stalled file\n")
    body = b"served while another download is stalled\n" * 20
    server.put_file("second.txt", body)
    try:
        stalled = start_stalled_download(
            server.address, build_get_request("/stalled.bin", host=host_header(server.address)),
            FIRST_RESPONSE_TIMEOUT,
            STALLED_RECEIVE_BUFFER,
        )
    except SockspecError as exc:
        fail("the first (large) download never started, so concurrency could not be tested",
             reason=str(exc), level=MUST)  # a download not served at all: not a SHOULD
    with stalled:
        try:
            # await_close=False: how the server ends the stream is graceful-close's business.
            response = fetch(server.address, "/second.txt", timeout=SECOND_DOWNLOAD_TIMEOUT,
                             await_close=False)
            problem = response.problem(expect_length=len(body), expect_digest=bytes_digest(body))
        except SockspecError as exc:
            problem = str(exc)
    expect(problem is None,
           "a second download was not served while a first one was stalled by its reader",
           second_download=problem,
           first_download=f"GET /stalled.bin ({STALLED_FILE_BYTES} bytes): response started, "
           "client not reading, connection held open",
           wait_limit_s=SECOND_DOWNLOAD_TIMEOUT)
