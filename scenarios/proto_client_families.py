"""The client families on a client of a declared protocol ([[protocol]]).

The harness plays the protocol's server (sockspec.adversary.declared): it reads
the client's requests with the declared framing, finds each one's exchange and
answers with its declared reply, bent as each family needs. The client sends its
own requests (its command says what); each must be a declared exchange whose reply
the declaration gives, or the verdict names the request. A client whose table
says ``report`` must also report every reply it received when the server behaves.

These scenarios join the families of the echo and http clients (same names, so
``-m client-basic`` selects both); their ids start with ``proto_client_``.
"""

from sockspec.adversary import Dribble, Ending, Listening
from sockspec.catalogue import DECLARED, client_scenario
from sockspec.scenarios.client_accept_late import (
    CLIENT_ACCEPT_LATE,
    FULL_QUEUE_BACKLOG,
    accept_delay,
    give_up_limit,
)
from sockspec.scenarios.client_basic import CLIENT_BASIC
from sockspec.scenarios.client_no_answer import CLIENT_NO_ANSWER, no_answer_limit
from sockspec.scenarios.client_partial_reads import (
    CLIENT_PARTIAL_READS,
    READ_WAIT_S,
    SEGMENT_PAUSE_S,
)
from sockspec.scenarios.client_reset_mid_response import CLIENT_RESET_MID_RESPONSE
from sockspec.scenarios.client_short_body import CLIENT_SHORT_BODY
from sockspec.scenarios.client_unix_max_path import CLIENT_UNIX_MAX_PATH
from sockspec.transport import UNIX_PATH_MAX
from sockspec.verdict import MUST
from sockspec.verdict.client import (
    expect_declared_failure,
    expect_declared_success,
    expect_message_on_failure,
)

NEEDS = ("exchange",)


@client_scenario(CLIENT_BASIC, profiles=(DECLARED,), needs=NEEDS,
                 level=MUST,
                 reason="the declaration is the protocol's contract: a client completes its "
                 "exchanges with a server that answers as declared")
def test_proto_client_basic_exchange(client):
    """The harness answers every request as declared; the client completes its exchanges.

    Trigger: the harness's server reads each request, matches it against the
    declared exchanges and sends the declared reply whole, then closes after the
    client's FIN. Verdict: every request is a declared exchange with a reply
    known, at least one exchange completed, the success status, and (with
    ``report``) exactly the replies sent.
    """
    server = client.serve(client.plan(b""))
    run = client.run_against(server, b"")
    expect_declared_success(client.target, run, server, "an ordinary exchange")


@client_scenario(CLIENT_PARTIAL_READS, profiles=(DECLARED,), needs=NEEDS,
                 level=MUST,
                 reason="RFC 9293 3.8: no record boundaries; a reply frame in one-byte "
                 "pieces is one frame")
def test_proto_client_reads_one_byte_segments(client):
    """Every reply byte (the framing's included) comes in its own segment; the client reassembles.

    Trigger: each reply is written one byte per send() with 1 ms pauses
    (TCP_NODELAY), each once the client has read the ones before (at most 1 s).
    Verdict: as client-basic: the success status and (with
    ``report``) exactly the replies sent.
    """
    server = client.serve(client.plan(b"", dribble=Dribble(1, SEGMENT_PAUSE_S, READ_WAIT_S)))
    run = client.run_against(server, b"")
    expect_declared_success(client.target, run, server, "replies in one-byte segments")


@client_scenario(CLIENT_RESET_MID_RESPONSE, profiles=(DECLARED,), needs=NEEDS,
                 level=MUST,
                 reason="RFC 9293 3.10.7.4: an RST aborts the exchange; a reply cut by it "
                 "is lost, never a success")
def test_proto_client_reset_mid_reply(client):
    """The first reply stops half-way through its first frame with a reset; the client fails.

    Trigger: half of the first reply frame's wire bytes, then RST (SO_LINGER 0;
    on a Unix socket, close() with the request left unread, which the client's
    recv() sees as ECONNRESET). Verdict: a failure status.
    """
    server = client.serve(client.plan(b"", cut_reply=1, ending=Ending.RESET))
    run = client.run_against(server, b"")
    expect_declared_failure(client.target, run, server, "a reset in the middle of a reply")


@client_scenario(CLIENT_SHORT_BODY, profiles=(DECLARED,), needs=NEEDS,
                 level=MUST,
                 reason="a frame cut short by the server's FIN is incomplete (the framing "
                 "says where it ends), never a success")
def test_proto_client_short_reply(client):
    """The first reply stops half-way through its first frame, then FIN; the client fails.

    Trigger: half of the first reply frame's wire bytes (a line without its
    line end, a length prefix with half the payload), then an orderly close.
    Verdict: a failure status.
    """
    server = client.serve(client.plan(b"", cut_reply=1))
    run = client.run_against(server, b"")
    expect_declared_failure(client.target, run, server, "FIN in the middle of a reply")


@client_scenario(CLIENT_NO_ANSWER, profiles=(DECLARED,), needs=NEEDS,
                 level=MUST,
                 reason="the client's stated timeout_s is its contract: a silent server makes "
                 "it fail within it, not hang")
def test_proto_client_server_never_answers(client):
    """The server reads the requests and never answers; the client fails within its limit.

    Trigger: accept, read requests, send nothing and hold the connection open.
    Verdict: a failure status before timeout_s plus slack (3 s, or half of
    timeout_s if more).
    """
    server = client.serve(client.plan(b"", answer=False, ending=Ending.HOLD_OPEN))
    run = client.run_against(server, b"", time_limit=no_answer_limit(client.timeout_s))
    expect_declared_failure(client.target, run, server, "a server that never answers")


@client_scenario(CLIENT_ACCEPT_LATE, profiles=(DECLARED,), needs=NEEDS,
                 level=MUST,
                 reason="RFC 9293 3.5: the handshake completes before accept(); a client's "
                 "exchange then simply waits for the server")
def test_proto_client_waits_for_late_accept(client):
    """The server calls accept() only after 1 s (queue not full); the client still succeeds.

    Trigger: listen, wait min(1 s, timeout_s / 3), then accept and answer as
    declared. Verdict: as client-basic.
    """
    delay = accept_delay(client.timeout_s)
    server = client.serve(client.plan(b""), Listening(accept_after_s=delay))
    run = client.run_against(server, b"")
    expect_declared_success(client.target, run, server, f"a server accepting after {delay:g} s")


@client_scenario(CLIENT_ACCEPT_LATE, profiles=(DECLARED,), needs=NEEDS,
                 level=MUST,
                 reason="RFC 9293 3.8.1: a dropped SYN is retransmitted; the client succeeds "
                 "once the queue drains (its message on failure: SHOULD)")
def test_proto_client_connect_on_full_backlog(client):
    """The accept queue is full when the client connects and drains 1 s later; no hang.

    Trigger: listen(1), queue 2 connections of our own, start the client,
    accept after min(1 s, timeout_s / 3). Verdict: as client-basic, or a
    failure status with a message on stderr, within the client's stated limit
    plus slack.
    """
    delay = accept_delay(client.timeout_s)
    listening = Listening(backlog=FULL_QUEUE_BACKLOG, fill_queue=True, accept_after_s=delay)
    server = client.serve(client.plan(b""), listening)
    run = client.run_against(server, b"", time_limit=give_up_limit(client.timeout_s))
    what = "connect() into a full accept queue"
    if run.exit_status == client.target.success_status or run.timed_out:
        expect_declared_success(client.target, run, server, f"{what} drained after {delay:g} s")
        return
    expect_declared_failure(client.target, run, server, what)
    expect_message_on_failure(run, what)


@client_scenario(CLIENT_ACCEPT_LATE, profiles=(DECLARED,), needs=NEEDS,
                 level=MUST,
                 reason="the client's stated timeout_s is its contract: it fails within it, "
                 "never hangs (its message on failure: SHOULD)")
def test_proto_client_connect_to_full_backlog_gives_up(client):
    """The accept queue stays full and nothing is accepted; the client fails within its limit.

    Trigger: listen(1), queue 2 connections of our own, never accept. Verdict:
    a failure status with a message on stderr before timeout_s plus slack.
    """
    listening = Listening(backlog=FULL_QUEUE_BACKLOG, fill_queue=True, accepts=False)
    server = client.serve(client.plan(b""), listening)
    run = client.run_against(server, b"", time_limit=give_up_limit(client.timeout_s))
    what = "a full accept queue that is never served"
    expect_declared_failure(client.target, run, server, what)
    expect_message_on_failure(run, what)


@client_scenario(CLIENT_UNIX_MAX_PATH, profiles=(DECLARED,), needs=NEEDS, transports=("unix",),
                 level=MUST,
                 reason="unix(7): sun_path holds 108 bytes on Linux; a 107-byte path is valid")
def test_proto_client_unix_path_of_maximum_length(client):
    """The server listens on a 107-byte path; the client reaches it and completes its exchanges.

    Trigger: {path} is exactly UNIX_PATH_MAX - 1 = 107 bytes. Verdict: as
    client-basic.
    """
    server = client.serve(client.plan(b""), max_length_path=True)
    assert len(server.address.path.encode()) == UNIX_PATH_MAX - 1
    run = client.run_against(server, b"")
    expect_declared_success(client.target, run, server, f"a {UNIX_PATH_MAX - 1}-byte socket path")
