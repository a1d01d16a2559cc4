"""client-basic: one ordinary exchange. Every other client scenario may assume it works.

The harness plays the reference server exactly (everything owed, written whole,
then FIN) and the client must report every byte with its success status.
"""

from sockspec.adversary.payloads import printable_bytes
from sockspec.catalogue import Family, client_scenario
from sockspec.verdict import MUST
from sockspec.verdict.client import ExpectedOutput, expect_success

CLIENT_BASIC = Family(
    name="client-basic",
    behaviour="the client completes one ordinary exchange and reports every byte",
    hint="check the command template (address placeholders, {in}/{url_path}, output to stdout "
    "or {out}) and that the client exits with its declared success status",
)

PAYLOAD_BYTES = 1000


@client_scenario(CLIENT_BASIC,
          level=MUST,
          reason="RFC 862 and RFC 9112 6.3: the client reports exactly the bytes it was "
          "sent")
def test_client_basic_exchange(client):
    """One echo of 1000 bytes, or one GET of a 1000-byte body, is reported whole with success.

    Trigger: the harness's server behaves like the reference server. Verdict: the
    success status and exactly the bytes sent back (echo) or served (http).
    """
    data = printable_bytes(PAYLOAD_BYTES)
    server = client.serve(client.plan(data))
    run = client.run_against(server, data)
    expect_success(client.target, run, ExpectedOutput.of(data), "an ordinary exchange")
