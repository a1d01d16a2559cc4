"""partial-writes: a slow, bursty reader still receives every byte the server owes it."""

from sockspec.catalogue import Family, scenario
from sockspec.drivers.streams import (
    PacedSink,
    limit_receive_buffer,
    printable_payload,
    read_in_bursts,
)
from sockspec.errors import SockspecError
from sockspec.reference.client import fetch
from sockspec.reference.client_streams import BackgroundSender
from sockspec.reference.stream_digest import bytes_digest
from sockspec.transport import connect, send_all
from sockspec.verdict import MUST, expect, expect_same_bytes, fail

PARTIAL_WRITES = Family(
    name="partial-writes",
    behaviour="when the client reads slowly, in bursts, the server's short and blocked "
    "sends lose nothing",
    hint="send()/write() may accept fewer bytes than asked (or none: EAGAIN on a "
    "non-blocking socket): keep the rest and send it when poll() reports POLLOUT, or use "
    "sendall(); loop on the count sendfile() returns",
)

# More than the 4 MiB TCP send-buffer ceiling (tcp_wmem max on this kernel) plus
# the client's limited receive buffer, so while the client pauses the server's
# sends must block or come up short, over TCP and (208 KiB buffers) Unix alike.
PAYLOAD_BYTES = 8 * 1024 * 1024
# The client's SO_RCVBUF (the kernel doubles it); fixing it stops autotuning
# from growing the client's side to hold the whole payload.
CLIENT_RECEIVE_BUFFER = 256 * 1024
BURST_BYTES = 1024 * 1024
PAUSE_BEFORE_BURST_S = 0.025
# Bounds each wait for data (not the whole transfer, which takes ~0.3 s).
IDLE_TIMEOUT = 5.0
PAYLOAD_SEED = 862  # RFC 862, echo


@scenario(PARTIAL_WRITES, profiles=("echo",),
          level=MUST,
          reason="POSIX send() may write fewer bytes than asked; RFC 862: every byte comes "
          "back")
def test_echo_slow_bursty_reader(server):
    """8 MiB sent at full speed come back whole to a client reading in bursts after pauses.

    Trigger: a background thread sends 8 MiB as fast as it can; the reader
    pauses 25 ms before each 1 MiB burst, with a small receive buffer, reads
    exactly 8 MiB and closes.
    Verdict: every byte comes back, in order (length and digest checked).
    Avoids: half-close (no FIN before the whole echo is in) and judging how the stream ends.
    """
    payload = printable_payload(PAYLOAD_BYTES, PAYLOAD_SEED)
    with connect(server.address, IDLE_TIMEOUT) as sock:
        limit_receive_buffer(sock, CLIENT_RECEIVE_BUFFER)
        sender = BackgroundSender(sock, lambda: send_all(sock, payload), half_close_after=False)
        try:
            result = read_in_bursts(sock, PAYLOAD_BYTES, burst_bytes=BURST_BYTES,
                                    pause_s=PAUSE_BEFORE_BURST_S, idle_timeout=IDLE_TIMEOUT)
        finally:
            sender.finish(IDLE_TIMEOUT)
    if result.data != payload:
        expect_same_bytes(
            payload, result.data, "echo of 8 MiB read in bursts",
            stream_end=result.end.value,
            expected_digest=bytes_digest(payload),
            observed_digest=bytes_digest(result.data),
            bytes_missing=PAYLOAD_BYTES - len(result.data),
            bursts_read=result.bursts,
            client_send_error=sender.error or "none",
        )


@scenario(PARTIAL_WRITES, profiles=("http",),
          level=MUST,
          reason="POSIX send()/sendfile() may write fewer bytes than asked; RFC 9112 6.3: "
          "the whole body is owed")
def test_http_download_slow_bursty_reader(server):
    """An 8 MiB download read in bursts after pauses arrives whole.

    Trigger: GET of an 8 MiB file; the client pauses 25 ms after every 1 MiB it reads.
    Verdict: 200, Content-Length 8 MiB, and the body's length and digest match the file.
    Avoids: half-close and judging how the stream ends (reading stops at Content-Length).
    """
    body = printable_payload(PAYLOAD_BYTES, PAYLOAD_SEED)
    server.put_file("bursty.bin", body)
    expected_digest = bytes_digest(body)
    pacer = PacedSink(BURST_BYTES, PAUSE_BEFORE_BURST_S)
    try:
        response = fetch(server.address, "/bursty.bin", timeout=IDLE_TIMEOUT, sink=pacer,
                         await_close=False)
    except SockspecError as exc:
        fail("the download read in bursts got no valid response head", reason=str(exc))
    problem = response.problem(expect_length=PAYLOAD_BYTES, expect_digest=expected_digest)
    expect(
        problem is None,
        f"download of 8 MiB read in bursts: {problem}",
        status=response.status,
        content_length=response.expected_length,
        body_bytes_received=response.body_length,
        bytes_missing=PAYLOAD_BYTES - response.body_length,
        expected_digest=expected_digest,
        observed_digest=response.digest,
        stream_end=response.end.value,
        pauses=pacer.pauses,
    )
