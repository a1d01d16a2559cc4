"""odd-sizes: files whose size is not a multiple of a block arrive exact.

Sizes around the 4 KiB page/block size catch loops that move whole blocks
only, stop at the first short read(), or mishandle an empty file.
"""

from sockspec.catalogue import Family, scenario
from sockspec.drivers.http import counting_bytes
from sockspec.errors import PeerError
from sockspec.reference.http_fetch import fetch
from sockspec.reference.stream_digest import bytes_digest
from sockspec.verdict import MUST, excerpt, expect, first_difference

ODD_SIZES = Family(
    name="odd-sizes",
    behaviour="files of 0, 1, 4095, 4097 and 100003 bytes arrive with exactly their length "
    "and bytes",
    hint="send exactly the size fstat() reports: loop until that many bytes are sent, "
    "including a last partial block (a short read() is not the end of the file), and "
    "answer an empty file with Content-Length: 0 and no body",
)

SIZES = (0, 1, 4095, 4097, 100003)
REPLY_TIMEOUT = 5.0


def download_problem(server, size: int) -> str | None:
    """GET the file of ``size`` bytes; a one-line description of what is wrong, or None."""
    data = counting_bytes(size, start=size)  # every file differs
    path = f"odd-sizes/{size}.bin"
    server.put_file(path, data)
    received = bytearray()
    try:
        response = fetch(server.address, f"/{path}", timeout=REPLY_TIMEOUT,
                         sink=received.extend, await_close=False)
    except PeerError as exc:
        return f"no complete response: {exc}"
    if response.status != 200:
        return f"status {response.status} {response.reason}"
    if response.expected_length not in (None, size):
        return f"Content-Length {response.expected_length}"
    if bytes(received) == data:
        return None
    offset = first_difference(data, bytes(received))
    return (
        f"received {len(received)} bytes, stream ended by {response.end.value}, first "
        f"difference at offset {offset}: expected {excerpt(data, offset)}, observed "
        f"{excerpt(bytes(received), offset)}; digest {response.digest}, expected "
        f"{bytes_digest(data)}"
    )


@scenario(ODD_SIZES, profiles=("http",),
          level=MUST,
          reason="RFC 9112 6.3: Content-Length is the file's size and the body exactly its "
          "bytes")
def test_http_odd_sizes(server):
    """Files of 0, 1, 4095, 4097 and 100003 bytes each arrive with their exact length and bytes.

    Trigger: one GET per file. Verdict: 200, Content-Length equal to the size
    (or absent), and the body identical to the file (length and digest); every
    size is tried and each wrong one is listed.
    Avoids: half-close and judging how the stream ends (reading stops at Content-Length).
    """
    problems = {size: download_problem(server, size) for size in SIZES}
    wrong = {size: problem for size, problem in problems.items() if problem is not None}
    expect(not wrong,
           f"{len(wrong)} of {len(SIZES)} files did not arrive exact: sizes "
           f"{', '.join(str(size) for size in wrong)}",
           **{f"file_of_{size}_bytes": problem for size, problem in wrong.items()})
