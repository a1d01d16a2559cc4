"""graceful-close: the server ends its side with FIN, never RST, even for a slow reader.

TCP: close() sends RST instead of FIN when SO_LINGER is {on, 0} or when unread
input is left in the receive queue; the RST makes the kernel discard what the
server's send queue still holds, so a client that reads late loses the end of
its data. Unix stream sockets have no RST, but the same mistake shows too: a
close() with unread input makes the peer's next read fail with ECONNRESET after
the queued data, instead of returning EOF (net/unix/af_unix.c, unix_release_sock).
Both transports are judged the same way: the data, then an orderly EOF.
"""

import time

from sockspec.catalogue import Family, scenario
from sockspec.drivers.http import counting_bytes, read_response_start, send_get
from sockspec.drivers.streams import printable_payload
from sockspec.errors import PeerError
from sockspec.reference.client_streams import BackgroundSender
from sockspec.transport import (
    StreamEnd,
    connect,
    describe_os_error,
    half_close,
    read_until_end,
    send_all,
)
from sockspec.verdict import expect

GRACEFUL_CLOSE = Family(
    name="graceful-close",
    behaviour="the server ends every connection with FIN, never RST, so a client reading "
    "late still gets every byte and then EOF",
    hint="end a connection with shutdown(SHUT_WR), read until EOF (bounded), then close(); "
    "never set SO_LINGER {1, 0} and never close() with unread input: both make the kernel "
    "send RST and discard response bytes the client has not read yet",
    cites="ends",
)

# 256 KiB is more than the client's receive window while it is not reading
# (tcp_rmem[1] = 131072 gives about 113 KiB on this machine), so part of the
# echo still waits in the server's send queue when the server closes.
ECHO_PAYLOAD_BYTES = 256 * 1024
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


def stream_end_words(end: StreamEnd, transport: str) -> str:
    if end is StreamEnd.RST:
        return "ECONNRESET (close with unread input)" if transport == "unix" else "RST"
    if end is StreamEnd.FIN:
        return "FIN (EOF)"
    return end.value


@scenario(GRACEFUL_CLOSE, profiles=("echo",))
def test_echo_close_after_late_read(server):
    """A client that reads its echo late still gets all of it and then FIN.

    Trigger: send 256 KiB and half-close at once, read nothing for
    READ_LATE_PAUSE_S, then read everything. Verdict: the stream ends with FIN
    (not RST/ECONNRESET) after all 256 KiB came back (the count is judged,
    not the bytes).
    """
    payload = printable_payload(ECHO_PAYLOAD_BYTES, seed=256)  # no NULs: binary handling is not judged here
    with connect(server.address, STREAM_END_TIMEOUT) as sock:
        # The sender runs beside us: over Unix sockets the buffers hold less
        # than 256 KiB, so the rest is sent only once we read.
        sender = BackgroundSender(sock, lambda: send_all(sock, payload), half_close_after=True)
        time.sleep(READ_LATE_PAUSE_S)  # the trigger: a client that reads late
        echoed, end = read_until_end(sock, STREAM_END_TIMEOUT, len(payload) + EXCESS_READ_LIMIT)
        sender.finish(STREAM_END_TIMEOUT)
    facts = dict(
        transport=server.transport,
        bytes_sent=len(payload),
        bytes_received=len(echoed),
        stream_end=stream_end_words(end, server.transport),
        read_paused_s=READ_LATE_PAUSE_S,
        client_send_error=sender.error or "none",
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


@scenario(GRACEFUL_CLOSE, profiles=("http",))
def test_http_close_with_pipelined_request(server):
    """A multi-MiB response read slowly arrives whole and ends with FIN, despite a pipelined request.

    Trigger: GET a 3 MiB file, read its first 64 KiB, send a second (pipelined)
    GET the HTTP/1.0 server is not obliged to answer, half-close, read nothing
    for READ_LATE_PAUSE_S, then read to the end. Verdict: every body byte
    arrives and the stream ends with FIN, not RST/ECONNRESET (a server closing
    with the pipelined request unread, or with SO_LINGER {1, 0}, resets it).
    Judged: the byte count and the stream's end; not the bytes themselves, nor
    whether the second request gets an answer.
    """
    body = counting_bytes(HTTP_BODY_BYTES, start=7)
    server.put_file("graceful-close/large.bin", body)
    server.put_file("graceful-close/second.txt", b"second response\n")
    with connect(server.address, STREAM_END_TIMEOUT) as sock:
        send_get(sock, "/graceful-close/large.bin")
        start = read_response_start(sock, STREAM_END_TIMEOUT, "GET /graceful-close/large.bin")
        expect(start.head.status == 200, "GET /graceful-close/large.bin did not get 200",
               status_line=start.status_line)
        first, first_end = read_until_end(
            sock, STREAM_END_TIMEOUT, max(0, HTTP_FIRST_READ_BYTES - len(start.body_start)))
        received = start.body_start + first
        send_error = None
        if first_end is StreamEnd.LIMIT:
            try:
                send_all(sock, b"GET /graceful-close/second.txt HTTP/1.0\r\n\r\n")
                half_close(sock)
            except (PeerError, OSError) as exc:  # the server reset us already
                send_error = str(exc) if isinstance(exc, PeerError) else describe_os_error(exc)
            time.sleep(READ_LATE_PAUSE_S)  # the trigger: a client that reads late
            rest, end = read_until_end(
                sock, STREAM_END_TIMEOUT, len(body) - len(received) + EXCESS_READ_LIMIT)
            received += rest
            if send_error and end is StreamEnd.FIN:
                end = StreamEnd.RST  # our send consumed the reset; recv() then says EOF
        else:
            end = first_end
    facts = dict(
        transport=server.transport,
        content_length=start.head.header("content-length"),
        body_bytes_expected=len(body),
        bytes_received_after_head=len(received),
        stream_end=stream_end_words(end, server.transport),
        read_paused_s=READ_LATE_PAUSE_S,
        send_error=send_error or "none",
    )
    expect(end is not StreamEnd.RST,
           f"the server reset the connection after {min(len(received), len(body))} of "
           f"{len(body)} body bytes instead of ending it with FIN (close() with the pipelined "
           "request unread, or SO_LINGER {1, 0}?)", **facts)
    expect(end is StreamEnd.FIN,
           f"the stream did not end with FIN: {end.value} after {len(received)} bytes "
           f"(waited {STREAM_END_TIMEOUT:g} s)", **facts)
    # Only the count is judged here: wrong bytes are other families' business.
    expect(len(received) >= len(body),
           f"the stream ended with FIN after only {len(received)} of {len(body)} body bytes",
           **facts)
