"""basic: one echo, one download. Every other scenario may assume these work."""

from sockspec.catalogue import Family, scenario
from sockspec.reference.client import echo_roundtrip, fetch
from sockspec.reference.stream_digest import bytes_digest
from sockspec.verdict import expect, expect_same_bytes

BASIC = Family(
    name="basic",
    behaviour="the server answers one simple request correctly",
    hint="check the accept loop and that every byte read is written back "
    "(echo) or that the response head and body follow the request (http)",
)

REPLY_TIMEOUT = 5.0


@scenario(BASIC, profiles=("echo",))
def test_echo_basic(server):
    """A short message comes back unchanged, then EOF after the client half-closes."""
    message = b"hello, sockspec\n"
    result = echo_roundtrip(server.address, message, timeout=REPLY_TIMEOUT)
    expect_same_bytes(message, result.received, "echo of a 16-byte message",
                      stream_end=result.end.value, send_error=result.send_error or "none")


@scenario(BASIC, profiles=("http",))
def test_http_basic(server):
    """GET of a small file returns 200, the right Content-Length and the file's bytes."""
    body = b"sockspec basic download\n" * 10
    server.put_file("basic.txt", body)
    response = fetch(server.address, "/basic.txt", timeout=REPLY_TIMEOUT)
    expect(response.status == 200, f"GET /basic.txt answered {response.status}, not 200",
           response=response.describe())
    expect(response.complete and response.digest == bytes_digest(body),
           "the body of /basic.txt differs from the file",
           response=response.describe(), expected_length=len(body))
