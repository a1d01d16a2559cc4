"""client-abort, for any declared protocol: clients that leave rudely neither kill nor wedge the server."""

from functools import partial

from sockspec.catalogue import DECLARED, scenario
from sockspec.drivers.declared import (
    exchange_then_leave,
    half_request_then_reset,
    leave_while_reply_owed,
    reset_at_once,
)
from sockspec.scenarios.client_abort import (
    CLIENT_ABORT,
    CONNECT_TIMEOUT,
    REPEATS,
    _baseline_fds,
    _expect_survived,
    _run_rude_clients,
)
from sockspec.transport import TcpAddress, abort
from sockspec.verdict import MUST

OWED_SEED = 7
# Once is enough: the state is checked (sock_diag) before the reset, not raced.
OWED_REPEATS = 1


@scenario(CLIENT_ABORT, profiles=(DECLARED,), needs=("exchange",), fresh_server=True,
          level=MUST,
          reason="one client's reset ends that connection only (POSIX ECONNRESET, RFC 9293 "
          "3.10.7); a server killed or wedged by it stops serving everyone")
def test_proto_client_abort_reset(server):
    """Clients that reset at once, mid-request or after an exchange leave the server serving.

    Trigger, twice each: reset (SO_LINGER {1, 0}, close) right after connecting; send
    the first request but its last byte, then reset; the first exchange, then reset.
    Verdict: the process is alive and a fresh first exchange is answered as declared.
    Avoids: judging what the rude clients receive: their RST is the trigger, only the
    server's survival is judged.
    """
    protocol, address = server.protocol, server.address
    baseline = _baseline_fds(server)
    rude_clients = [
        ("reset at once", partial(reset_at_once, address, CONNECT_TIMEOUT)),
        ("half a request, RST", partial(half_request_then_reset, protocol, address,
                                        CONNECT_TIMEOUT)),
        ("exchange, RST", partial(exchange_then_leave, protocol, address, CONNECT_TIMEOUT,
                                  abort)),
    ] * REPEATS
    notes = _run_rude_clients(server, rude_clients)
    _expect_survived(server, baseline, f"{REPEATS}x: reset at once; the first request but "
                     f"its last byte, RST; exchange {protocol.exchanges[0].name!r}, RST", notes)


@scenario(CLIENT_ABORT, profiles=(DECLARED,), needs=("large_reply", "answers_after_fin"),
          fresh_server=True,
          level=MUST,
          reason="a send() to a client that left fails with EPIPE (POSIX) and ends that "
          "connection only; SIGPIPE at its default action kills the whole server")
def test_proto_client_abort_reply_owed(server):
    """Clients that leave while a reply is owed, so the server's send() meets EPIPE, leave it serving.

    Trigger, once: TCP: with a tiny receive buffer, the [protocol.large_reply]
    sequence; once the server's send() of the last reply is blocked (sock_diag: its
    send buffer full, our request read), our FIN, acknowledged (the server is in
    CLOSE_WAIT), then RST: its send() fails with EPIPE and raises SIGPIPE unless
    ignored. Unix: shutdown(SHUT_RD), the first request, close(): the reply's send()
    fails with EPIPE (harness/drivers/declared.py has the kernel facts).
    Verdict: the process is alive and a fresh first exchange is answered as declared.
    Avoids: judging what the rude clients receive, and a request arriving with the FIN
    (half-close's trigger): over TCP the FIN goes out once the server is answering.
    """
    protocol, address = server.protocol, server.address
    baseline = _baseline_fds(server)
    owed = []
    how = ("FIN acknowledged while the large reply is blocked, then RST"
           if isinstance(address, TcpAddress) else "SHUT_RD, the first request, close()")

    def leave() -> None:
        owed.append(leave_while_reply_owed(protocol, address, CONNECT_TIMEOUT, OWED_SEED))

    notes = _run_rude_clients(server, [(f"reply owed: {how}", leave)] * OWED_REPEATS)
    _expect_survived(server, baseline, f"{OWED_REPEATS}x: left while a reply was owed ({how}: "
                     f"{'; '.join(owed) or 'never reached'})", notes)
