"""client-no-answer: a server that never answers makes the client give up within its limit.

The server accepts, reads the request (or the echo input) and then sends
nothing, not even a FIN. Without a timeout on its reads, a client waits
forever; the verdict holds it to the limit it states (``timeout_s``).
"""

from sockspec.adversary import Ending
from sockspec.adversary.payloads import printable_bytes
from sockspec.catalogue import Family, client_scenario
from sockspec.verdict import MUST
from sockspec.verdict.client import expect_failure_reported

CLIENT_NO_ANSWER = Family(
    name="client-no-answer",
    behaviour="a server that accepts but never answers makes the client fail within its limit",
    hint="bound every wait for the server: SO_RCVTIMEO / settimeout() or poll() with a timeout "
    "around recv(), then exit with a failure status and a message",
)

PAYLOAD_BYTES = 100


def no_answer_limit(timeout_s: float) -> float:
    """The client's stated limit plus slack for its start-up and exit on a busy machine."""
    return timeout_s + max(3.0, 0.5 * timeout_s)


@client_scenario(CLIENT_NO_ANSWER,
          level=MUST,
          reason="the client's stated timeout_s is its contract: a silent server makes it "
          "fail within it, not hang")
def test_client_server_never_answers(client):
    """The server reads the request and never answers; the client fails within its stated limit.

    Trigger: accept, read the echo input or the request head, then hold the
    connection open in silence. Verdict: a failure status before timeout_s plus
    slack (3 s, or half of timeout_s if more) have passed.
    """
    data = printable_bytes(PAYLOAD_BYTES)
    server = client.serve(client.plan(data, answer=False, ending=Ending.HOLD_OPEN))
    run = client.run_against(server, data, time_limit=no_answer_limit(client.timeout_s))
    expect_failure_reported(client.target, run, "a server that never answers",
                            delivered=0, owed=len(data))
