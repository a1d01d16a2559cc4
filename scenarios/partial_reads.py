"""partial-reads: input that arrives in pieces, with pauses between them, is one stream."""

from sockspec.catalogue import Family, scenario
from sockspec.drivers.streams import parse_small_response, send_in_pieces
from sockspec.reference.http_fetch import host_header
from sockspec.transport import connect, read_until_end
from sockspec.verdict import MUST, expect, expect_same_bytes

PARTIAL_READS = Family(
    name="partial-reads",
    behaviour="input split into pieces with pauses between them is handled as one stream",
    hint="recv() returns whatever has arrived, possibly one piece of a message: keep "
    "calling recv() and buffer until the message (or the request head, up to the blank "
    "line) is complete; never treat one recv() as one request",
)

# The pieces leave at once (TCP_NODELAY) and loopback delivers in microseconds;
# after the pause, each next piece also waits until the server has read all sent
# so far (at most READ_WAIT_S: one that leaves a piece unread that long has stopped
# reading), so its recv() returns each piece alone however busy the machine is.
PAUSE_BETWEEN_PIECES_S = 0.1
READ_WAIT_S = 1.0
REPLY_TIMEOUT = 5.0

ECHO_PIECES = (
    b"partial-reads: this message leaves in three pieces; ",
    b"the server's recv() sees each piece on its own, ",
    b"yet all of it must come back as one stream\n",
)


def http_pieces(host: str) -> tuple[bytes, ...]:
    """The request head in three pieces, each cut in an awkward place: inside the
    version, inside a header name. It carries the Host a real client sends."""
    return (
        b"GET /pieces.txt HT",
        f"TP/1.0\r\nHost: {host}\r\nUser-Ag".encode("latin-1"),
        b"ent: sockspec-partial-reads\r\n\r\n",
    )


@scenario(PARTIAL_READS, profiles=("echo",),
          level=MUST,
          reason="RFC 9293 3.8: TCP has no record boundaries, recv() returns what arrived "
          "(POSIX)")
def test_echo_message_in_three_pieces(server):
    """A message sent in three pieces, 100 ms apart, comes back whole.

    Trigger: three pieces of one message, each its own segment, paused in between;
    each next piece waits until the server has read the ones before (at most 1 s).
    Verdict: exactly the whole message comes back, in order, on the open connection.
    Avoids: half-close (no FIN before the echo is in) and judging how the stream ends.
    """
    message = b"".join(ECHO_PIECES)
    with connect(server.address, REPLY_TIMEOUT, nodelay=True) as sock:
        sent = send_in_pieces(sock, ECHO_PIECES, PAUSE_BETWEEN_PIECES_S, READ_WAIT_S)
        echoed, end = read_until_end(sock, REPLY_TIMEOUT, limit=len(message))
    expect_same_bytes(
        message, echoed, "echo of a message sent in 3 pieces",
        stream_end=end.value,
        pieces_sent=f"{sent.pieces_sent} of {len(ECHO_PIECES)} ({sent.bytes_sent} bytes)",
        send_error=sent.error or "none",
        pause_between_pieces_s=PAUSE_BETWEEN_PIECES_S,
        server_read_each_piece_alone=sent.read_alone,
    )


@scenario(PARTIAL_READS, profiles=("http",),
          level=MUST,
          reason="RFC 9293 3.8 and RFC 9112 2.2: a message is parsed from a stream, "
          "whatever its segments")
def test_http_request_head_in_three_pieces(server):
    """A request head sent in three pieces, 100 ms apart, gets a 200 and the file.

    Trigger: the request line and headers cut into three segments, paused in
    between; each next piece waits until the server has read the ones before (at
    most 1 s).
    Verdict: status 200 and the file's exact bytes.
    Avoids: half-close (no FIN before the response is in) and judging how the stream ends.
    """
    body = b"the request for this file arrived in three pieces\n" * 4
    server.put_file("pieces.txt", body)
    pieces = http_pieces(host_header(server.address))
    with connect(server.address, REPLY_TIMEOUT, nodelay=True) as sock:
        sent = send_in_pieces(sock, pieces, PAUSE_BETWEEN_PIECES_S, READ_WAIT_S)
        data, end = read_until_end(sock, REPLY_TIMEOUT, limit=len(body) + 64 * 1024)
    response = parse_small_response(data)
    facts = dict(
        request_pieces=[piece.decode() for piece in pieces],
        pieces_sent=f"{sent.pieces_sent} of {len(pieces)}",
        send_error=sent.error or "none",
        server_read_each_piece_alone=sent.read_alone,
        bytes_received=response.received,
        stream_end=end.value,
    )
    expect(response.head is not None and response.head.status == 200,
           "a request head that arrived in 3 pieces did not get a 200 response",
           status_line=response.status_line, **facts)
    expect_same_bytes(body, response.body, "body of /pieces.txt", **facts)
