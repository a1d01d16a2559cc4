"""client-reset-mid-response: a reset in the middle of the reply is reported as a failure.

ECONNRESET from recv() means the reply is lost, whatever arrived before it: a
client must exit with a failure status, never report success with short data.
Where the reply has no length (an http body that ends at the server's close),
the reset is the only sign that the body is incomplete.

A Unix stream socket has no RST: close() with unread input makes the peer's
recv() fail with ECONNRESET instead, which the echo scenario uses (the server
leaves the second half of the input unread). The http request is read whole,
so the http scenarios are TCP only.
"""

from sockspec.adversary import Ending
from sockspec.adversary.payloads import printable_bytes
from sockspec.catalogue import Family, client_scenario
from sockspec.verdict import MUST
from sockspec.verdict.client import expect_failure_reported

CLIENT_RESET_MID_RESPONSE = Family(
    name="client-reset-mid-response",
    behaviour="a connection reset in the middle of the reply is reported as a failure",
    hint="ECONNRESET (or EPIPE) from recv()/read() is an error, not the end of the data: exit "
    "with a failure status and say so on stderr; only recv() returning 0 ends a stream normally",
)

ECHO_BYTES = 64 * 1024         # the server reads and echoes only the first half
BODY_BYTES = 64 * 1024
CUT_AT = 32 * 1024
UNIX_HTTP = "a Unix stream socket cannot reset; the server has read the whole request, so " \
            "closing it shows the client a FIN (client-short-body covers that)"


@client_scenario(CLIENT_RESET_MID_RESPONSE, profiles=("echo",),
          level=MUST,
          reason="RFC 9293 3.10.7.4: an RST aborts the exchange; reporting success with "
          "half the echo loses data silently")
def test_client_echo_reset_mid_echo(client):
    """The echo of 64 KiB stops with a reset after 32 KiB; the client reports failure.

    Trigger: the server reads and echoes 32 KiB, then resets (TCP: RST; Unix:
    close with the rest of the input unread). Verdict: a failure status.
    """
    data = printable_bytes(ECHO_BYTES)
    server = client.serve(client.plan(data, stop_after=CUT_AT, ending=Ending.RESET))
    run = client.run_against(server, data)
    expect_failure_reported(client.target, run, "reset after half the echo",
                            delivered=CUT_AT, owed=len(data))


@client_scenario(CLIENT_RESET_MID_RESPONSE, profiles=("http",), not_on={"unix": UNIX_HTTP},
          level=MUST,
          reason="RFC 9112 8: a client MUST record a response cut short as incomplete")
def test_client_http_reset_mid_body(client):
    """A 64 KiB body with Content-Length stops with an RST after 32 KiB; the client reports failure.

    Trigger: head with Content-Length: 65536, 32 KiB of body, RST. Verdict: a
    failure status.
    """
    data = printable_bytes(BODY_BYTES)
    server = client.serve(client.plan(data, stop_after=CUT_AT, ending=Ending.RESET))
    run = client.run_against(server, data)
    expect_failure_reported(client.target, run, "RST after half the body",
                            delivered=CUT_AT, owed=len(data))


@client_scenario(CLIENT_RESET_MID_RESPONSE, profiles=("http",), not_on={"unix": UNIX_HTTP},
          level=MUST,
          reason="RFC 9112 8: a reset is not a close-delimited end; the response is "
          "incomplete")
def test_client_http_reset_mid_body_without_length(client):
    """A body without Content-Length stops with an RST after 32 KiB; the client reports failure.

    Trigger: head without Content-Length (the body ends at the server's close),
    32 KiB of a 64 KiB body, RST: the reset is the only sign the body is cut.
    Verdict: a failure status.
    """
    data = printable_bytes(BODY_BYTES)
    server = client.serve(client.plan(data, announce_length=False, stop_after=CUT_AT,
                                      ending=Ending.RESET))
    run = client.run_against(server, data)
    expect_failure_reported(client.target, run, "RST after 32 KiB of a body without length",
                            delivered=CUT_AT, owed=len(data))
