"""This project's own scenario family, written against sockspec's public API only."""

from sockspec import (
    Family,
    StreamEnd,
    connect,
    expect,
    expect_same_bytes,
    half_close,
    read_until_end,
    scenario,
    send_all,
)

PIPELINING = Family(
    name="pipelining",
    behaviour="messages sent back to back, before any reply is read, all come back in order",
    hint="keep reading in a loop and write back each piece as it arrives; never assume "
    "one recv() holds one message",
)

MESSAGES = [b"first message\n", b"second, a little longer message\n", b"third\n"]
REPLY_TIMEOUT_S = 5.0


@scenario(PIPELINING, profiles=("echo",))
def test_echo_pipelined(server):
    """Three messages written back to back, then a half-close: all three return, in order."""
    with connect(server.address, REPLY_TIMEOUT_S) as sock:
        for message in MESSAGES:
            send_all(sock, message)
        half_close(sock)
        received, end = read_until_end(sock, REPLY_TIMEOUT_S)
    expect_same_bytes(b"".join(MESSAGES), received, "echo of three pipelined messages",
                      stream_end=end.value)
    expect(end is StreamEnd.FIN, f"the stream ended with {end.value}, not the server's FIN",
           stream_end=end.value)
