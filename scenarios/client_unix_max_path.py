"""client-unix-max-path: a Unix socket path of the maximum length (107 bytes) works.

sun_path holds 108 bytes on Linux, the terminating NUL included, so 107 is the
longest usable path. Clients that copy the path into a smaller buffer (104
bytes on BSD and macOS, a fixed char[100]) or drop its last byte connect to a
different path, or to none.
"""

from sockspec.adversary.payloads import printable_bytes
from sockspec.catalogue import Family, client_scenario
from sockspec.transport import UNIX_PATH_MAX
from sockspec.verdict import MUST
from sockspec.verdict.client import ExpectedOutput, expect_success

CLIENT_UNIX_MAX_PATH = Family(
    name="client-unix-max-path",
    behaviour="a Unix socket path of 107 bytes, the longest that fits sun_path, is reached",
    hint="sizeof(sun_path) is 108 on Linux, NUL included: copy the whole path (check its length "
    "is < sizeof(sun_path) first) and pass the full sockaddr_un length to connect()",
)

PAYLOAD_BYTES = 200


@client_scenario(CLIENT_UNIX_MAX_PATH, transports=("unix",),
          level=MUST,
          reason="unix(7): sun_path holds 108 bytes on Linux; a 107-byte path is valid")
def test_client_unix_path_of_maximum_length(client):
    """The server listens on a 107-byte path; the client connects and completes the exchange.

    Trigger: {path} is exactly UNIX_PATH_MAX - 1 = 107 bytes. Verdict: the
    success status and every byte.
    """
    data = printable_bytes(PAYLOAD_BYTES)
    server = client.serve(client.plan(data), max_length_path=True)
    assert len(server.address.path.encode()) == UNIX_PATH_MAX - 1
    run = client.run_against(server, data)
    expect_success(client.target, run, ExpectedOutput.of(data),
                   f"a {UNIX_PATH_MAX - 1}-byte socket path")
