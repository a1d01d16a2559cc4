"""client-partial-reads: a reply that arrives one byte per segment is read whole.

recv() returns whatever has arrived, as little as one byte; a client must loop
until the reply is complete (echo: the server's FIN; http: Content-Length).
The harness's server writes every byte of the reply (the http head included)
with its own send() and TCP_NODELAY, pausing between them.
"""

from sockspec.adversary import Dribble
from sockspec.adversary.payloads import printable_bytes
from sockspec.catalogue import Family, client_scenario
from sockspec.verdict import MUST
from sockspec.verdict.client import ExpectedOutput, expect_success

CLIENT_PARTIAL_READS = Family(
    name="client-partial-reads",
    behaviour="a reply delivered one byte per segment is reassembled whole",
    hint="recv() may return fewer bytes than asked, even one: loop until the reply is complete "
    "(recv() returns 0 at the server's FIN, or Content-Length bytes arrived)",
)

PAYLOAD_BYTES = 300
SEGMENT_PAUSE_S = 0.001
# Each next byte also waits until the client has read all sent so far, so its
# recv() sees each byte alone however busy the machine is; a client that leaves a
# byte unread this long has stopped reading, and the rest goes without waiting.
READ_WAIT_S = 1.0


@client_scenario(CLIENT_PARTIAL_READS,
          level=MUST,
          reason="RFC 9293 3.8: no record boundaries; a reply in one-byte pieces is one "
          "stream")
def test_client_reads_one_byte_segments(client):
    """A 300-byte reply sent one byte per send() with 1 ms pauses is reported whole.

    Trigger: the server dribbles the echo (or the http head and body) a byte at
    a time, each once the client has read the ones before (at most 1 s). Verdict: the success status and exactly the 300 bytes.
    """
    data = printable_bytes(PAYLOAD_BYTES)
    server = client.serve(client.plan(data, dribble=Dribble(1, SEGMENT_PAUSE_S, READ_WAIT_S)))
    run = client.run_against(server, data)
    expect_success(client.target, run, ExpectedOutput.of(data),
                   f"a {PAYLOAD_BYTES}-byte reply in one-byte segments")
