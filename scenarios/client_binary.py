"""client-binary: bytes of every value, NUL and invalid UTF-8 included, come through unchanged.

A client that treats the data as text (stops at NUL, decodes UTF-8, translates
line ends) reports something else than it received.
"""

from sockspec.adversary.payloads import every_byte_value
from sockspec.catalogue import Family, client_scenario
from sockspec.verdict import MUST
from sockspec.verdict.client import ExpectedOutput, expect_success

CLIENT_BINARY = Family(
    name="client-binary",
    behaviour="every byte value, NUL, CR, LF and 0x80-0xff included, is reported unchanged",
    hint="treat the data as bytes, never as a C string or text: write exactly the count recv() "
    "returned (fwrite/write, not printf(\"%s\")/puts), and do not decode or translate line ends",
)

REPEATS = 16  # 16 x 768 bytes = 12 KiB, starting with NUL


@client_scenario(CLIENT_BINARY,
          level=MUST,
          reason="RFC 9293 3.1 and RFC 9110 8: data is octets, NUL included")
def test_client_every_byte_value(client):
    """12 KiB holding every byte value 0-255 in three orders, starting with NUL, come back exact.

    Trigger: echo that data (or serve it as the http body). Verdict: the success
    status and the same bytes; a difference names its first offset.
    """
    data = every_byte_value(REPEATS)
    server = client.serve(client.plan(data))
    run = client.run_against(server, data)
    expect_success(client.target, run, ExpectedOutput.of(data), "every byte value")
