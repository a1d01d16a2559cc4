"""sendfile-large: a file bigger than one sendfile() call can move arrives whole.

Linux moves at most 0x7ffff000 bytes (MAX_RW_COUNT, include/linux/fs.h) per
read/write/sendfile call, whatever count is asked for. A server that calls
sendfile() once per file, trusting it to send everything, truncates every file
above 2 GiB - 4 KiB. This is the one slow scenario: it moves ~2.15 GB, bounded
by the page cache (the first read of a fresh sparse file fills it with zero
pages; measured 4.8-9.0 s for 3 GiB cold, 0.85 s warm, on this machine).
"""

from sockspec.catalogue import Family, scenario
from sockspec.drivers.http import read_response_start, send_get, stream_body
from sockspec.transport import connect
from sockspec.verdict import MUST, expect

SENDFILE_LARGE = Family(
    name="sendfile-large",
    behaviour="a file larger than one sendfile() call moves (0x7ffff000 bytes) arrives "
    "with its exact length and last bytes",
    hint="sendfile() moves at most 0x7ffff000 bytes per call (MAX_RW_COUNT), and fewer when "
    "the socket buffer is full: loop, advancing the offset by each return value, until the "
    "whole file is sent",
    capture="on-request",  # a capture beside it costs 20-40 % of what it measures
)

MAX_RW_COUNT = 0x7FFFF000
# Past the cap by 1 MiB + 17: a second call is needed, and the odd 17 bytes
# also catch a sender that drops a partial last block.
FILE_SIZE = MAX_RW_COUNT + 1024 * 1024 + 17
# Only the marker is data; the rest of the file is holes (zeros, no disk space).
MARKER = b"\nsockspec sendfile-large end marker 7d1c\n"
FILE_PATH = "sendfile-large/over-2GiB.bin"
# Each wait for the head or for body bytes. Generous: a cold page cache and a
# shared, noisy machine can stall the sender for seconds.
LARGE_BODY_IDLE_TIMEOUT = 60.0
# The whole body; below pytest-timeout's 300 s per item, far above the ~1-10 s it takes.
LARGE_BODY_DEADLINE = 240.0


@scenario(SENDFILE_LARGE, profiles=("http",),
          level=MUST,
          reason="RFC 9112 6.3: the whole body is owed; sendfile() moves at most "
          "0x7ffff000 bytes a call (Linux)")
def test_http_sendfile_over_2gib(server, metrics):
    """A sparse file of 0x7ffff000 + 1 MiB + 17 bytes arrives with its exact length and end marker.

    Trigger: GET the file; the body streams through one reused 1 MiB buffer
    (never kept, never hashed). Verdict: 200, Content-Length equal to the file
    size, exactly that many bytes received, and the marker in the last bytes.
    Avoids: half-close and judging how the stream ends (reading stops at the file's size).
    """
    path = server.put_sparse_file(FILE_PATH, FILE_SIZE, MARKER)
    try:
        with connect(server.address, LARGE_BODY_IDLE_TIMEOUT) as sock:
            send_get(sock, f"/{FILE_PATH}")
            start = read_response_start(sock, LARGE_BODY_IDLE_TIMEOUT, f"GET /{FILE_PATH}")
            expect(start.head.status == 200, f"GET /{FILE_PATH} did not get 200",
                   status_line=start.status_line, file_size=FILE_SIZE)
            declared = start.head.content_length
            expect(declared in (None, FILE_SIZE),
                   f"Content-Length is {declared}, the file has {FILE_SIZE} bytes",
                   content_length=declared, file_size=FILE_SIZE,
                   difference=(declared or 0) - FILE_SIZE)
            body = stream_body(sock, start, FILE_SIZE, tail_size=len(MARKER),
                               idle_timeout=LARGE_BODY_IDLE_TIMEOUT,
                               deadline_s=LARGE_BODY_DEADLINE)
    finally:
        # 2 GiB of zero pages sit in the page cache until the file is gone.
        path.unlink(missing_ok=True)
    metrics.record("body_seconds", body.elapsed_s)
    metrics.record("body_gb_per_s", body.rate_gbps)
    missing = FILE_SIZE - body.length
    expect(missing == 0,
           f"the body stopped {missing} bytes short: {body.length} of {FILE_SIZE} bytes, "
           f"then {body.end.value}"
           + (" (exactly one sendfile() call's worth: 0x7ffff000)"
              if body.length == MAX_RW_COUNT else ""),
           file_size=FILE_SIZE, content_length=declared, bytes_received=body.length,
           bytes_missing=missing, per_call_cap=f"{MAX_RW_COUNT} (0x{MAX_RW_COUNT:x})",
           stream_end=body.end.value, elapsed_s=round(body.elapsed_s, 3))
    expect(body.tail == MARKER,
           f"all {FILE_SIZE} bytes arrived but the last {len(MARKER)} are not the marker",
           expected_tail=MARKER.hex(" "), observed_tail=body.tail.hex(" "))
