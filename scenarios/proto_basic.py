"""basic, for any declared protocol: every declared exchange is answered as declared."""

from sockspec.catalogue import DECLARED, scenario
from sockspec.drivers.declared import keeps_connection, run_exchanges
from sockspec.scenarios.basic import BASIC
from sockspec.verdict import MUST, expect

REPLY_TIMEOUT = 5.0


@scenario(BASIC, profiles=(DECLARED,), needs=("exchange",),
          level=MUST,
          reason="the declaration is the protocol's contract: each request gets the reply "
          "it declares")
def test_proto_basic_exchanges(server):
    """Every declared exchange, in order, gets the reply its declaration expects.

    Trigger: each [[protocol.exchange]] in declaration order, its request sent whole
    on one connection (one connection per exchange unless
    properties.keeps_connection = true), each reply read before the next request.
    Verdict: every reply matches its expectation (exact bytes, regex, the payload
    sent, or any well-framed reply); captures succeed.
    Avoids: half-close (no FIN before the replies are in) and judging how the stream ends.
    """
    protocol = server.protocol
    outcomes = run_exchanges(protocol, server.address, REPLY_TIMEOUT)
    last = outcomes[-1]
    expect(len(outcomes) == len(protocol.exchanges) and last.ok,
           f"exchange {last.exchange.name!r} ({len(outcomes)} of {len(protocol.exchanges)}) "
           f"was not answered as declared: {last.problem}",
           **last.facts(),
           answered_before=", ".join(o.exchange.name for o in outcomes[:-1]) or "none",
           one_connection="yes" if keeps_connection(protocol) else "no (one per exchange)",
           declared_at=f"{protocol.source}:{last.exchange.line}")
