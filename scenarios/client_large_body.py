"""client-large-body: a body beyond 2 GiB is received whole.

2 GiB is where 32-bit lengths and counters wrap (2^31 bytes) and where one
read()/write()/sendfile() call stops (0x7ffff000 bytes, MAX_RW_COUNT). The
harness's server sends a sparse file of 0x7ffff000 + 1 MiB + 17 bytes with the
reference server's sendfile() loop; the client must report all of it. This is
the one slow client scenario: ~2.15 GB pass through the client and then
through its output (stdout is hashed as it streams, never kept).
"""

from sockspec.adversary import FileBody
from sockspec.catalogue import Family, client_scenario
from sockspec.verdict import MUST
from sockspec.verdict.client import ExpectedOutput, expect_success

CLIENT_LARGE_BODY = Family(
    name="client-large-body",
    behaviour="a body of more than 2 GiB is received and reported whole",
    hint="use 64-bit sizes (off_t, size_t, int64) for Content-Length and byte counters, stream "
    "the body through a buffer instead of one read into memory, and loop on short reads/writes",
)

MAX_RW_COUNT = 0x7FFFF000
BODY_BYTES = MAX_RW_COUNT + 1024 * 1024 + 17
MARKER = b"\nsockspec client-large-body end marker 5e2a\n"
# The whole run: ~2-10 s here; far below pytest-timeout's 300 s per item.
LARGE_BODY_TIME_LIMIT_S = 240.0


@client_scenario(CLIENT_LARGE_BODY, profiles=("http",), time_limit=300.0,
          level=MUST,
          reason="RFC 9110 8.6: a recipient MUST anticipate large Content-Length values "
          "and prevent integer overflow")
def test_client_http_body_over_2gib(client, metrics):
    """A body of 0x7ffff000 + 1 MiB + 17 bytes (zeros, then an end marker) is reported whole.

    Trigger: GET a sparse file of that size, sent with Content-Length by a
    sendfile() loop. Verdict: the success status, exactly that many bytes, the
    digest of zeros-then-marker, and the marker as the last bytes.
    """
    path = client.sparse_file("over-2gib.bin", BODY_BYTES, MARKER)
    try:
        server = client.serve(client.plan(b"", body=FileBody(str(path), BODY_BYTES)))
        run = client.run(server.address, url_path=server.plan.url_path,
                         time_limit=LARGE_BODY_TIME_LIMIT_S)
    finally:
        path.unlink(missing_ok=True)  # 2 GiB of zero pages stay cached while the file exists
    metrics.record("client_seconds", run.elapsed_s)
    expect_success(client.target, run, ExpectedOutput.zeros_then(BODY_BYTES, MARKER),
                   f"a body of {BODY_BYTES} bytes (0x{BODY_BYTES:x})")
