"""basic: one echo, one download. Every other scenario may assume these work."""

from sockspec.catalogue import Family, scenario
from sockspec.reference.client import echo_roundtrip, fetch
from sockspec.reference.stream_digest import bytes_digest
from sockspec.verdict import MUST, expect, expect_same_bytes

BASIC = Family(
    name="basic",
    behaviour="the server answers one simple request correctly",
    hint="check the accept loop and that every byte read is written back "
    "(echo) or that the response head and body follow the request (http)",
)

REPLY_TIMEOUT = 5.0


@scenario(BASIC, profiles=("echo",),
          level=MUST,
          reason="RFC 862: every byte received is sent back")
def test_echo_basic(server):
    """A short message comes back unchanged on the open connection.

    Trigger: an interactive exchange: send 16 bytes, read their echo, then close().
    Verdict: the same 16 bytes come back.
    Avoids: half-close (no FIN before the echo is in) and judging how the stream ends.
    """
    message = b"hello, sockspec\n"
    result = echo_roundtrip(server.address, message, timeout=REPLY_TIMEOUT, half_close=False)
    expect_same_bytes(message, result.received, "echo of a 16-byte message",
                      stream_end=result.end.value, send_error=result.send_error or "none")


@scenario(BASIC, profiles=("http",),
          level=MUST,
          reason="RFC 9110 15.3.1 and RFC 9112 6.3: 200 with a Content-Length that matches "
          "the body")
def test_http_basic(server):
    """GET of a small file returns 200, the right Content-Length and the file's bytes.

    Trigger: GET /basic.txt (with Host), read the response, then close().
    Verdict: 200 and the file's exact bytes.
    Avoids: half-close (no FIN before the response is in) and judging how the stream ends.
    """
    body = b"sockspec basic download\n" * 10
    server.put_file("basic.txt", body)
    response = fetch(server.address, "/basic.txt", timeout=REPLY_TIMEOUT, await_close=False)
    expect(response.status == 200, f"GET /basic.txt answered {response.status}, not 200",
           response=response.describe())
    expect(response.complete and response.digest == bytes_digest(body),
           "the body of /basic.txt differs from the file",
           response=response.describe(), expected_length=len(body))
