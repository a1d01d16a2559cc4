"""binary-integrity: every byte value, NUL included, travels unchanged."""

from sockspec.catalogue import Family, scenario
from sockspec.errors import SockspecError
from sockspec.reference.client import fetch
from sockspec.reference.stream_digest import bytes_digest
from sockspec.transport import connect, read_until_end, send_all
from sockspec.verdict import MUST, expect_same_bytes, fail, first_difference

BINARY_INTEGRITY = Family(
    name="binary-integrity",
    behaviour="all 256 byte values, NULs included, come back identical",
    hint="treat data as bytes with a length, never as a C string: use the count recv() "
    "or read() returned, not strlen(); no text-mode translation of line ends or encodings",
)

REPLY_TIMEOUT = 5.0
# A printable lead-in first, so a server that stops at the first NUL still echoes
# something and the evidence shows exactly where it stopped.
LEAD_IN = b"binary-integrity:"
EVERY_BYTE_VALUE = bytes(range(256))
HTTP_FILE_BYTES = 64 * 1024


def every_byte_value_message() -> bytes:
    """Each value 0-255 ascending, then descending, then as pairs with NUL and CR/LF."""
    pairs = b"".join(bytes((value, 0, value, 13, 10)) for value in range(256))
    return LEAD_IN + EVERY_BYTE_VALUE + EVERY_BYTE_VALUE[::-1] + pairs


@scenario(BINARY_INTEGRITY, profiles=("echo",),
          level=MUST,
          reason="RFC 9293 3.1 and RFC 862: TCP carries octets; every value comes back "
          "unchanged")
def test_echo_every_byte_value(server):
    """A message holding all 256 byte values, NULs and CR/LF included, comes back identical.

    Trigger: one send of a printable lead-in, then bytes 0-255 up and down and
    each value next to NUL, CR and LF (1809 bytes).
    Verdict: exactly the same bytes come back on the open connection.
    Avoids: half-close (no FIN before the echo is in) and judging how the stream ends.
    """
    message = every_byte_value_message()
    with connect(server.address, REPLY_TIMEOUT) as sock:
        send_all(sock, message)
        echoed, end = read_until_end(sock, REPLY_TIMEOUT, limit=len(message))
    expect_same_bytes(message, echoed, "echo of every byte value", stream_end=end.value,
                      first_nul_sent_at=message.index(0))


@scenario(BINARY_INTEGRITY, profiles=("http",),
          level=MUST,
          reason="RFC 9110 8 and RFC 9112 6.3: content is octets, exactly Content-Length "
          "of them")
def test_http_file_of_every_byte_value(server):
    """A 64 KiB file holding every byte value downloads identical.

    Trigger: GET of a file made of bytes 0-255 repeated (NULs, CR, LF, 0x80-0xff).
    Verdict: 200, Content-Length 65536, and the body's digest matches the file's.
    Avoids: half-close and judging how the stream ends (reading stops at Content-Length).
    """
    body = EVERY_BYTE_VALUE * (HTTP_FILE_BYTES // len(EVERY_BYTE_VALUE))
    server.put_file("every-byte.bin", body)
    try:
        response = fetch(server.address, "/every-byte.bin", timeout=REPLY_TIMEOUT,
                         await_close=False)
    except SockspecError as exc:
        fail("GET of a file of every byte value got no valid response head", reason=str(exc))
    problem = response.problem(expect_length=len(body), expect_digest=bytes_digest(body))
    if problem is not None:
        first = response.body_first_bytes
        fail(f"a file of every byte value did not download identical: {problem}",
             status=response.status,
             body_bytes_received=response.body_length,
             expected_digest=bytes_digest(body),
             observed_digest=response.digest,
             first_difference_in_the_first_bytes=first_difference(body[:len(first)], first),
             stream_end=response.end.value)
