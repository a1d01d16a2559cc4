"""concurrency, for any declared protocol: clients connected at once are all answered."""

import time

from sockspec.catalogue import DECLARED, scenario
from sockspec.drivers.declared import new_conversation
from sockspec.errors import SockspecError
from sockspec.scenarios.concurrency import CONCURRENCY
from sockspec.transport import StreamEnd, connect, send_all
from sockspec.verdict import MUST, expect, fail

SIMULTANEOUS_CLIENTS = 20
# One deadline for the whole group: 20 connections and 20 short exchanges take
# milliseconds; the rest is slack for a loaded machine (and a SYN retried after 1 s).
ALL_REPLIES_TIMEOUT = 5.0
# Each connect alone: the group's deadline bounds the rest.
CONNECT_TIMEOUT = 5.0
# Once the deadline has passed, a client whose reply already arrived is still counted.
LATE_LOOK_S = 0.01


@scenario(CONCURRENCY, profiles=(DECLARED,), needs=("concurrent",),
          level=MUST,
          reason="the declaration promises concurrent service (properties.concurrent = true)")
def test_proto_twenty_clients_at_once(server):
    """Twenty clients connected at the same time each get their reply to the first exchange.

    Trigger: 20 connections are opened and kept open; each sends the declaration's
    first exchange (the same request, the same values).
    Verdict: every client gets the declared reply on its own connection before one
    shared deadline, while all 20 connections are still open.
    Avoids: half-close (no client sends a FIN before its reply is in) and judging how
    the streams end.
    """
    protocol = server.protocol
    exchange = protocol.exchanges[0]
    conversations = []
    started = time.monotonic()
    try:
        for _ in range(SIMULTANEOUS_CLIENTS):
            sock = connect(server.address, CONNECT_TIMEOUT)
            conversations.append(new_conversation(protocol, sock, ALL_REPLIES_TIMEOUT))
        requests = []
        for conversation in conversations:
            sent, wire = conversation.render(exchange)
            send_all(conversation.sock, wire)
            requests.append((sent, wire))
        deadline = started + ALL_REPLIES_TIMEOUT
        answered, silent, wrong = [], [], []
        for number, (conversation, (sent, wire)) in enumerate(
                zip(conversations, requests, strict=True)):
            conversation.timeout = max(LATE_LOOK_S, deadline - time.monotonic())
            outcome = conversation.receive(exchange, sent, wire)
            if outcome.ok:
                answered.append(number)
            elif outcome.frames or conversation.reader.end in (StreamEnd.FIN, StreamEnd.RST):
                wrong.append(f"client {number}: {outcome.problem}")
            else:
                silent.append(number)
    except SockspecError as exc:
        fail(f"only {len(conversations)} of {SIMULTANEOUS_CLIENTS} clients could connect "
             "and send their request", reason=str(exc),
             elapsed_s=f"{time.monotonic() - started:.3f}")
    finally:
        for conversation in conversations:
            conversation.sock.close()
    expect(len(answered) == SIMULTANEOUS_CLIENTS,
           f"only {len(answered)} of {SIMULTANEOUS_CLIENTS} simultaneously connected clients "
           f"got their reply to {exchange.name!r} within {ALL_REPLIES_TIMEOUT:g} s",
           clients_answered=answered or "none",
           clients_without_any_reply=silent or "none",
           clients_with_a_wrong_reply=wrong or "none",
           exchange=exchange.name, expected=exchange.expect.describe(),
           elapsed_s=f"{time.monotonic() - started:.3f}")
