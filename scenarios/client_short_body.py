"""client-short-body: a reply cut short by an orderly close is reported as a failure.

The server sends FIN (recv() returns 0) before it has sent all it owes: half
the echo, or half the body its Content-Length announced. A client must compare
what arrived with what was owed and exit with a failure status.
"""

from sockspec.adversary.payloads import printable_bytes
from sockspec.catalogue import Family, client_scenario
from sockspec.verdict import MUST
from sockspec.verdict.client import expect_failure_reported

CLIENT_SHORT_BODY = Family(
    name="client-short-body",
    behaviour="a reply that ends early with a FIN is reported as a failure",
    hint="recv() returning 0 before Content-Length bytes (or the whole echo) arrived means the "
    "reply is short: count the bytes and exit with a failure status instead of success",
)

PAYLOAD_BYTES = 4000
CUT_AT = 2000


@client_scenario(CLIENT_SHORT_BODY,
          level=MUST,
          reason="RFC 9112 8 and 6.3: a body shorter than Content-Length is incomplete, "
          "never success")
def test_client_short_reply(client):
    """The server sends 2000 of the 4000 bytes it owes, then FIN; the client reports failure.

    Trigger: echo only the first half of the input (the rest is read and
    dropped), or send Content-Length: 4000 and 2000 body bytes; then close
    gracefully. Verdict: a failure status.
    """
    data = printable_bytes(PAYLOAD_BYTES)
    server = client.serve(client.plan(data, stop_after=CUT_AT))
    run = client.run_against(server, data)
    expect_failure_reported(client.target, run, "FIN after half the reply",
                            delivered=CUT_AT, owed=len(data))
