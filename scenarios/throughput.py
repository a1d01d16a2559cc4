"""throughput: bulk data through the server arrives complete and verified, and is timed."""

import os

from sockspec.catalogue import Chart, Family, scenario
from sockspec.measure.settings import Size
from sockspec.measure.throughput import (
    ThroughputRequest,
    run_download_throughput,
    run_echo_throughput,
    write_pattern_file,
)
from sockspec.thresholds import Measure
from sockspec.verdict import MUST, expect

TOTAL_BYTES = Size("throughput_bytes", 64 * 1024 * 1024)

THROUGHPUT = Family(
    name="throughput",
    behaviour="a large transfer through the server arrives whole and unchanged",
    hint="a transfer cut short or altered: loop send()/sendfile() until every byte is "
    "written, never cap bytes per connection, and keep reading while writing back",
    capture="on-request",  # a capture beside it costs 20-40 % of what it measures
    charts=(Chart("throughput_gbps", "throughput", "Gbit/s"),),
    sizes=(TOTAL_BYTES,),
    # A figure (INFO) with no default: reported, judged only against the user's
    # threshold (--threshold throughput.gbps>=10), whose miss is a failure.
    measures=(Measure("gbps", "throughput_gbps", "higher", "Gbit/s"),),
)

# Bound on each wait for progress; a stall this long fails the transfer.
PROGRESS_TIMEOUT = 10.0
# Bound on the whole transfer: 64 MiB takes 0.05-0.5 s here.
TRANSFER_DEADLINE = 60.0


def _record(metrics, result) -> None:
    metrics.judge("gbps", result.gbit_per_s)


@scenario(THROUGHPUT, profiles=("echo",), level=MUST,
          reason="MUST: every byte comes back unchanged (RFC 862, RFC 9293 reliable "
          "stream); the rate is a figure: INFO, no default threshold")
def test_echo_throughput(server, metrics):
    """64 MiB sent through the echo come back whole, with the same xxh3 digest.

    Trigger: one connection; a thread sends SOCKSPEC_THROUGHPUT_BYTES (default
    64 MiB) of a fixed pseudo-random pattern while this one reads the echo and
    hashes it; exactly that many bytes are read, with no half-close.
    Verdict: every byte came back, digests equal, no send error; throughput_gbps
    (Gbit/s of payload) is recorded.
    Avoids: half-close (no FIN: exactly the bytes sent are read back) and judging how the
    stream ends.
    """
    total_bytes = TOTAL_BYTES.value()
    request = ThroughputRequest(total_bytes=total_bytes,
                                timeout_s=PROGRESS_TIMEOUT, deadline_s=TRANSFER_DEADLINE)
    result = run_echo_throughput(server.address, request)
    _record(metrics, result)
    expect(result.verified, f"bulk echo not intact: {result.describe()}",
           sent_bytes=request.total_bytes, received_bytes=result.received_bytes,
           stream_end=result.end.value, send_error=result.send_error or "none",
           expected_digest=result.expected_digest, received_digest=result.received_digest,
           last_bytes_received=result.last_bytes[-16:].hex(" ") or "(none)")


@scenario(THROUGHPUT, profiles=("http",), level=MUST,
          reason="MUST: the body is Content-Length bytes, the file's own (RFC 9112 6.3); "
          "the rate is a figure: INFO, no default threshold")
def test_http_download_throughput(server, metrics):
    """A 64 MiB file downloads whole, with the file's xxh3 digest.

    Trigger: GET of a file of SOCKSPEC_THROUGHPUT_BYTES (default 64 MiB,
    pseudo-random, a multiple of 4 KiB) over HTTP/1.0; the body is hashed as it
    streams; reading stops at Content-Length.
    Verdict: status 200, every byte, the right digest; throughput_gbps recorded.
    Avoids: half-close and judging how the stream ends (reading stops at Content-Length).
    """
    total_bytes = TOTAL_BYTES.value()
    server.root.mkdir(parents=True, exist_ok=True)
    path = server.root / "throughput.bin"
    digest = write_pattern_file(path, total_bytes)
    try:
        result = run_download_throughput(server.address, "/throughput.bin",
                                         size=total_bytes, digest=digest,
                                         timeout_s=PROGRESS_TIMEOUT,
                                         deadline_s=TRANSFER_DEADLINE)
    finally:
        os.unlink(path)
    _record(metrics, result)
    expect(result.verified, f"download not intact: {result.describe()}",
           file_bytes=total_bytes, received_bytes=result.received_bytes,
           stream_end=result.end.value, problem=result.send_error or "none",
           expected_digest=digest, received_digest=result.received_digest)
