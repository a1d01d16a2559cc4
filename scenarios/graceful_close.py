"""graceful-close: the server ends its side with FIN, never RST, even for a slow reader.

TCP: close() sends RST instead of FIN when SO_LINGER is {on, 0} or when unread
input is left in the receive queue; the RST makes the kernel discard what the
server's send queue still holds, so a client that reads late loses the end of
its data. Unix stream sockets have no RST, but the same mistake shows too: a
close() with unread input makes the peer's next read fail with ECONNRESET after
the queued data, instead of returning EOF (net/unix/af_unix.c, unix_release_sock).
Both transports are judged the same way: the data, then an orderly EOF.
"""

import socket
import time

from sockspec.catalogue import Family, scenario
from sockspec.drivers.closing import (
    connect_with_receive_buffer,
    settle_unix_end,
    wait_until_echo_written,
)
from sockspec.drivers.http import counting_bytes, read_response_start, send_get
from sockspec.drivers.streams import printable_payload
from sockspec.errors import PeerError
from sockspec.reference.client_streams import BackgroundSender
from sockspec.reference.http_fetch import build_get_request, host_header
from sockspec.transport import (
    StreamEnd,
    connect,
    describe_os_error,
    half_close,
    read_until_end,
    send_all,
)
from sockspec.verdict import MUST, SHOULD, expect

GRACEFUL_CLOSE = Family(
    name="graceful-close",
    behaviour="the server ends every connection with FIN, never RST, so a client reading "
    "late still gets every byte and then EOF",
    hint="end a connection with shutdown(SHUT_WR), read until EOF (bounded), then close(); "
    "never set SO_LINGER {1, 0} and never close() with unread input: both make the kernel "
    "send RST and discard response bytes the client has not read yet",
    cites="ends",
)

# 128 KiB is far more than the client's receive window while it is not reading
# (CLIENT_RECEIVE_BUFFER), so over TCP most of the echo still waits in the
# server's send queue when the server closes; and little enough that the whole
# echo fits the buffers on the way (Unix: the server's ~208 KiB send buffer), so
# the server can write all of it back before our FIN.
ECHO_PAYLOAD_BYTES = 128 * 1024
# SO_RCVBUF before connect(): the kernel doubles it, autotuning stays off.
CLIENT_RECEIVE_BUFFER = 16 * 1024
HTTP_RECEIVE_BUFFER = 64 * 1024
# A multi-MiB response: loopback TCP queues ~4 MiB at once, so the server
# finishes and closes while most of the body is still unread by the client.
# A whole number of 4 KiB blocks, so a server dropping a file's partial last
# block fails odd-sizes, not this family.
HTTP_BODY_BYTES = 3 * 1024 * 1024
# Body bytes read before the pipelined request is sent: the server is mid-response.
HTTP_FIRST_READ_BYTES = 64 * 1024
# The slow client reads nothing for this long, long enough for the server to
# echo or send what fits in the buffers, see our FIN and close.
READ_LATE_PAUSE_S = 0.3
# Each wait for data, and for the stream to end once the client reads again.
STREAM_END_TIMEOUT = 10.0
# Bytes read past the expected data before giving up on seeing the end.
EXCESS_READ_LIMIT = 64 * 1024
# Unix: after EOF, the longest wait for the server's socket to be released
# (sockspec.drivers.closing.settle_unix_end); a server closing as it should takes
# a few milliseconds.
RELEASE_WAIT_S = 5.0


def read_to_the_end(sock, limit: int, timeout: float = STREAM_END_TIMEOUT):
    """read_until_end, then the end as confirmed_end() has it: (bytes, end, facts)."""
    data, end = read_until_end(sock, timeout, limit)
    return (data, *confirmed_end(sock, end))


def confirmed_end(sock, end: StreamEnd) -> tuple[StreamEnd, dict[str, str]]:
    """Over Unix, an EOF judged again once the server's socket is released
    (sockspec.drivers.closing.settle_unix_end), with a fact saying how; TCP as is."""
    if sock.family != socket.AF_UNIX:
        return end, {}
    end, words = settle_unix_end(sock, end, RELEASE_WAIT_S)
    return end, {"after_eof": words}


def stream_end_words(end: StreamEnd, transport: str) -> str:
    if end is StreamEnd.RST:
        return "ECONNRESET (close with unread input)" if transport == "unix" else "RST"
    if end is StreamEnd.FIN:
        return "FIN (EOF)"
    return end.value


@scenario(GRACEFUL_CLOSE, profiles=("echo",),
          level=MUST,
          reason="RFC 862 and RFC 9293 3.10.4: an RST (SO_LINGER {1, 0}, an abort) "
          "discards echo bytes still owed")
def test_echo_close_after_late_read(server):
    """A client that reads its echo late still gets all of it and then FIN.

    Trigger: with a small receive buffer, send 128 KiB; once the server has
    written every byte back (our receive queue plus, over TCP, its send queue
    as sock_diag reports it), send our FIN, read nothing for READ_LATE_PAUSE_S,
    then read everything. Over TCP most of the echo still waits in the
    server's send queue when our FIN makes it close. Verdict: the stream ends
    with FIN (not RST/ECONNRESET) after all 128 KiB came back (the count is
    judged, not the bytes).
    Avoids: data arriving with the FIN (half-close's trigger): the FIN goes out
    only once the server has read and echoed every byte.
    """
    payload = printable_payload(ECHO_PAYLOAD_BYTES, seed=256)  # no NULs: binary handling is not judged here
    with connect_with_receive_buffer(server.address, STREAM_END_TIMEOUT,
                                     CLIENT_RECEIVE_BUFFER) as sock:
        # The sender runs beside us: a server with small buffers writes the echo
        # back only as we make room, and we must not deadlock against it.
        sender = BackgroundSender(sock, lambda: send_all(sock, payload), half_close_after=False)
        written = wait_until_echo_written(sock, len(payload), STREAM_END_TIMEOUT)
        sender.finish(STREAM_END_TIMEOUT)
        fin_error = _send_fin(sock)
        time.sleep(READ_LATE_PAUSE_S)  # the trigger: a client that reads late
        rest, end, settled = read_to_the_end(sock, len(payload) + EXCESS_READ_LIMIT)
    echoed = written.read_early + rest
    facts = dict(
        transport=server.transport,
        bytes_sent=len(payload),
        bytes_received=len(echoed),
        stream_end=stream_end_words(end, server.transport),
        echo_written_when_our_fin_left=f"{written.written} bytes ({written.how})",
        read_paused_s=READ_LATE_PAUSE_S,
        client_send_error=sender.error or fin_error or "none",
        **settled,
    )
    expect(end is not StreamEnd.RST,
           f"the server reset the connection after {len(echoed)} of {len(payload)} echoed "
           "bytes instead of ending it with FIN (SO_LINGER {1, 0} or close() with unread input?)",
           **facts)
    expect(end is StreamEnd.FIN,
           f"the stream did not end with FIN: {end.value} after {len(echoed)} bytes "
           f"(waited {STREAM_END_TIMEOUT:g} s)", **facts)
    # Only the count is judged here: wrong bytes are basic's business, lost ones ours.
    expect(len(echoed) >= len(payload),
           f"the stream ended with FIN after only {len(echoed)} of {len(payload)} echoed bytes",
           **facts)


def _send_fin(sock) -> str | None:
    try:
        half_close(sock)
    except OSError as exc:  # the server reset us already: the read below says so
        return describe_os_error(exc)
    return None


def _start_large_download(server, sock):
    """GET the 3 MiB file and read the head and the first 64 KiB of its body."""
    send_get(sock, "/graceful-close/large.bin")
    start = read_response_start(sock, STREAM_END_TIMEOUT, "GET /graceful-close/large.bin")
    expect(start.head.status == 200, "GET /graceful-close/large.bin did not get 200",
           status_line=start.status_line, level=MUST)
    first, first_end = read_until_end(
        sock, STREAM_END_TIMEOUT, max(0, HTTP_FIRST_READ_BYTES - len(start.body_start)))
    return start, start.body_start + first, first_end


def _expect_whole_body_then_fin(server, start, received: bytes, end: StreamEnd, body: bytes,
                                cause: str, **more) -> None:
    facts = dict(
        transport=server.transport,
        content_length=start.head.header("content-length"),
        body_bytes_expected=len(body),
        bytes_received_after_head=len(received),
        stream_end=stream_end_words(end, server.transport),
        read_paused_s=READ_LATE_PAUSE_S,
        **more,
    )
    expect(end is not StreamEnd.RST,
           f"the server reset the connection after {min(len(received), len(body))} of "
           f"{len(body)} body bytes instead of ending it with FIN ({cause})", **facts)
    # MUST whatever the scenario's level: an HTTP/1.0 response ends with the server's
    # close (RFC 9112 9.3), and a body cut short is an incomplete message (RFC 9112 8).
    expect(end is StreamEnd.FIN,
           f"the stream did not end with FIN: {end.value} after {len(received)} bytes "
           f"(waited {STREAM_END_TIMEOUT:g} s)", level=MUST, **facts)
    # Only the count is judged here: wrong bytes are other families' business.
    expect(len(received) >= len(body),
           f"the stream ended with FIN after only {len(received)} of {len(body)} body bytes",
           level=MUST, **facts)


@scenario(GRACEFUL_CLOSE, profiles=("http",),
          level=SHOULD,
          reason="RFC 9112 9.6: servers typically close in stages so an RST cannot erase "
          "the response; RFC 1122 4.2.2.13 lets a full close reset unread input")
def test_http_close_with_pipelined_request(server):
    """A multi-MiB response read slowly arrives whole and ends with FIN, despite a pipelined request.

    Trigger: GET a 3 MiB file, read its first 64 KiB, send a second (pipelined)
    GET the HTTP/1.0 server is not obliged to answer, read nothing for
    READ_LATE_PAUSE_S, then read to the end of the stream, and only then
    close. Verdict: every body byte arrives and the stream ends with FIN, not
    RST/ECONNRESET (a server closing with the pipelined request unread resets
    it). Judged: the byte count and the stream's end; not the bytes
    themselves, nor whether the second request gets an answer.
    Avoids: half-close: the client sends no FIN before the server ended the stream.
    """
    body = counting_bytes(HTTP_BODY_BYTES, start=7)
    server.put_file("graceful-close/large.bin", body)
    server.put_file("graceful-close/second.txt", b"second response\n")
    send_error, settled = None, {}
    with connect(server.address, STREAM_END_TIMEOUT) as sock:
        start, received, end = _start_large_download(server, sock)
        if end is StreamEnd.LIMIT:
            try:
                send_all(sock, build_get_request("/graceful-close/second.txt",
                                                 host=host_header(server.address)))
            except (PeerError, OSError) as exc:  # the server reset us already
                send_error = str(exc) if isinstance(exc, PeerError) else describe_os_error(exc)
            time.sleep(READ_LATE_PAUSE_S)  # the trigger: a client that reads late
            rest, end, settled = read_to_the_end(
                sock, len(body) - len(received) + EXCESS_READ_LIMIT)
            received += rest
            if send_error and end is StreamEnd.FIN:
                end = StreamEnd.RST  # our send consumed the reset; recv() then says EOF
    _expect_whole_body_then_fin(server, start, received, end, body,
                                "close() with the pipelined request unread, or SO_LINGER {1, 0}?",
                                send_error=send_error or "none", **settled)


@scenario(GRACEFUL_CLOSE, profiles=("http",), level=MUST,
          reason="RFC 9293 3.6 and 3.10.4: after the client's FIN the server still sends "
          "what it owes; an abort (SO_LINGER {1, 0}) discards response bytes")
def test_http_close_after_fin_mid_response(server):
    """A client that half-closes in the middle of a multi-MiB response still gets all of it, then FIN.

    Trigger: with a small receive buffer, GET a 3 MiB file, read the head and
    the first 64 KiB of the body, send our FIN, read nothing for
    READ_LATE_PAUSE_S, then read to the end. Most of the body still waits on
    the server's side when our FIN makes it close. Verdict: every body byte
    arrives and the stream ends with FIN, not RST/ECONNRESET (a close() with
    SO_LINGER {1, 0} drops what its send queue holds and resets).
    Avoids: a request arriving with the FIN (half-close's trigger): the FIN
    goes out only once the server has read the request and is answering.
    """
    body = counting_bytes(HTTP_BODY_BYTES, start=11)
    server.put_file("graceful-close/large.bin", body)
    fin_error, settled = None, {}
    with connect_with_receive_buffer(server.address, STREAM_END_TIMEOUT,
                                     HTTP_RECEIVE_BUFFER) as sock:
        start, received, end = _start_large_download(server, sock)
        if end is StreamEnd.LIMIT:
            fin_error = _send_fin(sock)
            time.sleep(READ_LATE_PAUSE_S)  # the trigger: a client that reads late
            rest, end, settled = read_to_the_end(
                sock, len(body) - len(received) + EXCESS_READ_LIMIT)
            received += rest
    _expect_whole_body_then_fin(server, start, received, end, body,
                                "close() after the client's FIN with SO_LINGER {1, 0}, or "
                                "without sending what was still owed?",
                                client_fin=f"after {HTTP_FIRST_READ_BYTES} body bytes were read",
                                fin_error=fin_error or "none", **settled)
