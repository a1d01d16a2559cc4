"""half-close, for any declared protocol: a request that arrives with the client's FIN is answered."""

from sockspec.catalogue import DECLARED, scenario
from sockspec.drivers.declared import NotPrepared, ready_for
from sockspec.errors import SockspecError
from sockspec.scenarios.half_close import (
    EXCESS_READ_LIMIT,
    HALF_CLOSE,
    expect_stream_ended,
    send_data_and_fin,
)
from sockspec.transport import read_until_end
from sockspec.verdict import MUST, expect, fail

REPLY_TIMEOUT = 5.0


@scenario(HALF_CLOSE, profiles=(DECLARED,), needs=("answers_after_fin",),
          level=MUST,
          reason="RFC 9293 3.6: a FIN only ends the peer's sending; the declaration says a "
          "request before it is answered (properties.answers_after_fin = true)")
def test_proto_request_with_fin(server):
    """Each declared request that arrives together with the client's FIN gets its reply, then EOF.

    Trigger: for each exchange, on its own connection, the exchanges before it sent
    whole and answered; then TCP_CORK, its request, shutdown(SHUT_WR), uncork: the
    request and the FIN in one segment (on Unix: sent while the server is stopped
    with SIGSTOP).
    Verdict: every reply matches its declaration, then the server ends the stream.
    Avoids: judging how the stream ends (FIN or RST: graceful-close's business).
    """
    protocol = server.protocol
    for index, exchange in enumerate(protocol.exchanges):
        try:
            with ready_for(protocol, server.address, index, REPLY_TIMEOUT) as ready:
                sent, wire = ready.render()
                send_data_and_fin(server, ready.sock, wire)
                outcome = ready.receive(sent, wire)
                rest, end = read_until_end(ready.sock, REPLY_TIMEOUT, limit=EXCESS_READ_LIMIT)
        except NotPrepared as exc:
            fail(str(exc), **exc.before[-1].facts())
        except SockspecError as exc:
            fail(f"exchange {exchange.name!r} with the FIN: {exc}")
        facts = dict(outcome.facts(), stream_end=ready.conversation.reader.end.value
                     if ready.conversation.reader.end else end.value,
                     exchanges_sent_whole_before=index)
        expect(outcome.ok, f"a request that arrived together with the client's FIN was not "
               f"answered as declared: {outcome.problem}", **facts)
        if ready.conversation.reader.end is None:
            expect_stream_ended(end, f"the reply to {exchange.name!r}")
