"""client-half-close: when the server half-closes first, the client takes the FIN as the end.

The server sends everything it owes, then shutdown(SHUT_WR): its FIN arrives
while it still keeps the connection open and reads. recv() returning 0 is the
end of the reply: a client must finish at once with the data it has, not wait
for something else (its own timeout, a full close it cannot see).
"""

from sockspec.adversary import Ending
from sockspec.adversary.payloads import printable_bytes
from sockspec.catalogue import Family, client_scenario
from sockspec.verdict import MUST, expect
from sockspec.verdict.client import ExpectedOutput, expect_finished_by, expect_success

CLIENT_HALF_CLOSE = Family(
    name="client-half-close",
    behaviour="the server's FIN before its close ends the reply at once",
    hint="recv() returning 0 is the end of the stream (the server's FIN), even while the "
    "connection stays open: stop reading there, never treat 0 as 'no data yet' or wait for a "
    "timeout to end the body",
)

PAYLOAD_BYTES = 2000
# After the FIN the client has this share of its own stated limit to finish
# (at least PROMPT_FLOOR_S): a client that waits for its timeout takes all of it.
PROMPT_SHARE = 0.5
PROMPT_FLOOR_S = 1.0


@client_scenario(CLIENT_HALF_CLOSE,
          level=MUST,
          reason="RFC 9293 3.6: the server's FIN ends its data; the client takes EOF as "
          "the end at once")
def test_client_server_half_closes_first(client):
    """The reply ends with the server's shutdown(SHUT_WR) while it keeps reading; the client finishes.

    Trigger: echo the 2000 input bytes and half-close without waiting for the
    client's FIN, or send a 2000-byte body without Content-Length (it ends at
    the FIN) and half-close. Verdict: the success status, all 2000 bytes, and
    an exit within half the client's stated limit of the server's FIN.
    """
    data = printable_bytes(PAYLOAD_BYTES)
    if client.profile == "echo":
        plan = client.plan(data, echo_until=len(data), ending=Ending.HALF_CLOSE_AND_WAIT)
    else:
        plan = client.plan(data, announce_length=False, ending=Ending.HALF_CLOSE_AND_WAIT)
    server = client.serve(plan)
    run = client.run_against(server, data)
    expect_success(client.target, run, ExpectedOutput.of(data), "a reply ended by a half-close")
    fins = [log.fin_at for log in server.connections if log.fin_at is not None]
    expect(bool(fins), "the harness's server never sent its FIN", server_side=server.describe())
    allowed = max(PROMPT_FLOOR_S, PROMPT_SHARE * client.timeout_s)
    expect_finished_by(run, fins[0] + allowed, "after the server's half-close", since=fins[0],
                       since_what="the server's FIN")
