"""partial-reads: input that arrives in pieces, with pauses between them, is one stream."""

from sockspec.catalogue import Family, scenario
from sockspec.drivers.streams import parse_small_response, send_in_pieces
from sockspec.transport import connect, read_until_end
from sockspec.verdict import expect, expect_same_bytes

PARTIAL_READS = Family(
    name="partial-reads",
    behaviour="input split into pieces with pauses between them is handled as one stream",
    hint="recv() returns whatever has arrived, possibly one piece of a message: keep "
    "calling recv() and buffer until the message (or the request head, up to the blank "
    "line) is complete; never treat one recv() as one request",
)

# Long enough that the server's recv() returns each piece alone, even on a busy
# machine: the pieces leave at once (TCP_NODELAY) and loopback delivers in microseconds.
PAUSE_BETWEEN_PIECES_S = 0.1
REPLY_TIMEOUT = 5.0

ECHO_PIECES = (
    b"partial-reads: this message leaves in three pieces; ",
    b"the server's recv() sees each piece on its own, ",
    b"yet all of it must come back as one stream\n",
)
# Each piece cuts the head in an awkward place: inside the version, inside a header name.
HTTP_PIECES = (
    b"GET /pieces.txt HT",
    b"TP/1.0\r\nHost: sockspec\r\nUser-Ag",
    b"ent: sockspec-partial-reads\r\n\r\n",
)


@scenario(PARTIAL_READS, profiles=("echo",))
def test_echo_message_in_three_pieces(server):
    """A message sent in three pieces, 100 ms apart, comes back whole.

    Trigger: three pieces of one message, each its own segment, paused in between.
    Verdict: exactly the whole message comes back, in order, on the open connection.
    """
    message = b"".join(ECHO_PIECES)
    with connect(server.address, REPLY_TIMEOUT, nodelay=True) as sock:
        sent = send_in_pieces(sock, ECHO_PIECES, PAUSE_BETWEEN_PIECES_S)
        echoed, end = read_until_end(sock, REPLY_TIMEOUT, limit=len(message))
    expect_same_bytes(
        message, echoed, "echo of a message sent in 3 pieces",
        stream_end=end.value,
        pieces_sent=f"{sent.pieces_sent} of {len(ECHO_PIECES)} ({sent.bytes_sent} bytes)",
        send_error=sent.error or "none",
        pause_between_pieces_s=PAUSE_BETWEEN_PIECES_S,
    )


@scenario(PARTIAL_READS, profiles=("http",))
def test_http_request_head_in_three_pieces(server):
    """A request head sent in three pieces, 100 ms apart, gets a 200 and the file.

    Trigger: the request line and headers cut into three segments, paused in between.
    Verdict: status 200 and the file's exact bytes.
    """
    body = b"the request for this file arrived in three pieces\n" * 4
    server.put_file("pieces.txt", body)
    with connect(server.address, REPLY_TIMEOUT, nodelay=True) as sock:
        sent = send_in_pieces(sock, HTTP_PIECES, PAUSE_BETWEEN_PIECES_S)
        data, end = read_until_end(sock, REPLY_TIMEOUT, limit=len(body) + 64 * 1024)
    response = parse_small_response(data)
    facts = dict(
        request_pieces=[piece.decode() for piece in HTTP_PIECES],
        pieces_sent=f"{sent.pieces_sent} of {len(HTTP_PIECES)}",
        send_error=sent.error or "none",
        bytes_received=response.received,
        stream_end=end.value,
    )
    expect(response.head is not None and response.head.status == 200,
           "a request head that arrived in 3 pieces did not get a 200 response",
           status_line=response.status_line, **facts)
    expect_same_bytes(body, response.body, "body of /pieces.txt", **facts)
