"""basic: one echo, one download. Every other scenario may assume these work."""

from harness.scenario import Family, scenario
from harness.transport import connect, half_close, read_until_end, send_all
from harness.verdict import expect, expect_same_bytes

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
    with connect(server.address, REPLY_TIMEOUT) as sock:
        send_all(sock, message)
        half_close(sock)
        echoed, end = read_until_end(sock, REPLY_TIMEOUT)
    expect_same_bytes(message, echoed, "echo of a 16-byte message", stream_end=end.value)


@scenario(BASIC, profiles=("http",))
def test_http_basic(server):
    """GET of a small file returns 200, the right Content-Length and the file's bytes."""
    body = b"sockspec basic download\n" * 10
    server.put_file("basic.txt", body)
    with connect(server.address, REPLY_TIMEOUT) as sock:
        send_all(sock, b"GET /basic.txt HTTP/1.0\r\n\r\n")
        response, end = read_until_end(sock, REPLY_TIMEOUT)
    head, sep, received = response.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    expect(bool(sep) and status_line.split(" ")[1:2] == ["200"],
           "GET /basic.txt did not get a 200 response",
           status_line=status_line or "(none)", bytes_received=len(response),
           stream_end=end.value)
    expect_same_bytes(body, received, "body of /basic.txt", stream_end=end.value)
