"""half-close: data that arrives together with the client's FIN is still answered in full."""

from sockspec.catalogue import Family, scenario
from sockspec.drivers.closing import held_server
from sockspec.drivers.streams import parse_small_response, send_with_fin
from sockspec.reference.http_fetch import build_get_request, host_header
from sockspec.transport import StreamEnd, connect, read_until_end
from sockspec.verdict import MUST, expect, expect_same_bytes

HALF_CLOSE = Family(
    name="half-close",
    behaviour="data followed at once by the client's FIN is answered in full, then EOF",
    hint="recv() returning 0 means only that the client will send no more: first send "
    "everything still owed (flush any reply buffer), then shutdown(SHUT_WR) and close()",
)

REPLY_TIMEOUT = 5.0
# Under loopback's ~64 KiB MSS, so data and FIN travel in one segment; not a
# multiple of 4 KiB, so a server that replies in 4 KiB blocks has a remainder
# pending when it sees the FIN.
MESSAGE_BYTES = 9000
# Read at most this much past what is owed before calling the peer over-talkative.
EXCESS_READ_LIMIT = 64 * 1024
# Unix: how long SIGSTOP may take to stop every thread of the server.
HOLD_TIMEOUT = 5.0


def send_data_and_fin(server, sock, data: bytes) -> None:
    """The server's first read of ``data`` finds the client's FIN already behind it.

    TCP: one segment carries both (send_with_fin). A Unix stream has no segments:
    the server is held stopped (SIGSTOP) while the data and the FIN are queued, then
    continued; a server the harness does not control gets send then shutdown at once.
    """
    if server.transport != "unix":
        send_with_fin(sock, data)
        return
    with held_server(server, HOLD_TIMEOUT):
        send_with_fin(sock, data)


def expect_stream_ended(end: StreamEnd, after: str) -> None:
    """After the client's FIN the server owes an end of stream; whether that end is a
    FIN or an RST is judged by the graceful-close family, not here."""
    expect(end in (StreamEnd.FIN, StreamEnd.RST),
           f"after {after} the server did not end the stream within {REPLY_TIMEOUT:g} s "
           "although the client had sent its FIN",
           stream_end=end.value)


@scenario(HALF_CLOSE, profiles=("echo",),
          level=MUST,
          reason="RFC 9293 3.6: a FIN only ends the peer's sending; data before it is "
          "delivered and answered")
def test_echo_data_with_fin(server):
    """9000 bytes that arrive together with the client's FIN are all echoed, then EOF.

    Trigger: TCP_CORK, send 9000 bytes, shutdown(SHUT_WR), uncork: one segment
    carrying data and FIN (on Unix: send, then shutdown, while the server is
    stopped with SIGSTOP). Verdict: all 9000 bytes come back unchanged, then the
    server ends the stream.
    Avoids: judging how the stream ends (FIN or RST: graceful-close's business).
    """
    line = b"half-close: these bytes travel with the client's FIN.\n"
    message = (line * (MESSAGE_BYTES // len(line) + 1))[:MESSAGE_BYTES]
    with connect(server.address, REPLY_TIMEOUT) as sock:
        send_data_and_fin(server, sock, message)
        echoed, end = read_until_end(sock, REPLY_TIMEOUT, limit=MESSAGE_BYTES + EXCESS_READ_LIMIT)
    expect_same_bytes(message, echoed, "echo of data sent together with FIN",
                      stream_end=end.value)
    expect_stream_ended(end, "the whole echo")


@scenario(HALF_CLOSE, profiles=("http",),
          level=MUST,
          reason="RFC 9293 3.6: after the client's FIN it still receives; a request before "
          "the FIN is answered")
def test_http_request_with_fin(server):
    """A request that arrives together with the client's FIN gets the whole response, then EOF.

    Trigger: TCP_CORK, send the GET request, shutdown(SHUT_WR), uncork: the
    request and FIN in one segment (on Unix: send, then shutdown, while the
    server is stopped with SIGSTOP). Verdict: 200, the file's exact bytes, then
    the server ends the stream.
    Avoids: judging how the stream ends (FIN or RST: graceful-close's business).
    """
    body = b"answered although the request came with a FIN\n" * 50
    server.put_file("half-close.txt", body)
    with connect(server.address, REPLY_TIMEOUT) as sock:
        send_data_and_fin(server, sock, build_get_request("/half-close.txt",
                                                          host=host_header(server.address)))
        data, end = read_until_end(sock, REPLY_TIMEOUT, limit=len(body) + EXCESS_READ_LIMIT)
    response = parse_small_response(data)
    expect(response.head is not None and response.head.status == 200,
           "a request that arrived together with FIN did not get a 200 response",
           status_line=response.status_line, bytes_received=response.received,
           stream_end=end.value)
    expect_same_bytes(body, response.body, "body of /half-close.txt", stream_end=end.value)
    expect_stream_ended(end, "the whole response")
