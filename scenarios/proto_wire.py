"""Wire-level scenarios for any declared protocol ([[protocol]]): exact segments.

As scenarios/wire_segments.py and wire_backlog.py do for echo and http, each
starts the target again inside a private network namespace and talks to it with
crafted TCP segments (sockspec.drivers.wire), with the declaration's first
exchange (the request a fresh connection may send): every byte its own segment
(partial-reads), the request and the client's FIN in one segment (half-close),
and the accept queue counted SYN by SYN (backlog). The others of the echo and
http versions do not carry over to any protocol: a segment after the server's
response and FIN needs a server that closes first, and a reset in the middle of
a response needs a reply far larger than any request a crafted client can send
quickly. TCP over IPv4 and IPv6; skipped with the reason when the machine cannot
build the namespace.
"""

from sockspec.catalogue import DECLARED, scenario
from sockspec.drivers.declared import judge_wire_reply, reply_arrived, wire_request
from sockspec.drivers.wire import wire_session
from sockspec.scenarios import wire_backlog
from sockspec.scenarios.backlog import BACKLOG
from sockspec.scenarios.half_close import HALF_CLOSE
from sockspec.scenarios.partial_reads import PARTIAL_READS
from sockspec.scenarios.wire_segments import (
    BYTE_PAUSE_S,
    HANDSHAKE_TIMEOUT,
    LINE_END_PAUSE_S,
    REPLY_TIMEOUT,
    WIRE_ONLY,
)
from sockspec.verdict import MUST, SHOULD, expect


def _facts(flow, wire: bytes, session) -> dict[str, object]:
    return dict(request=repr(wire[:64]) + ("..." if len(wire) > 64 else ""),
                reply=repr(bytes(flow.received[:64])), bytes_received=len(flow.received),
                server_fin=flow.server_fin, server_rst=flow.server_rst,
                **session.server_facts())


@scenario(PARTIAL_READS, profiles=(DECLARED,), needs=("exchange",),
          transports=("tcp", "tcp6"), not_on=WIRE_ONLY, needs_process_control=True,
          level=MUST,
          reason="RFC 9293 3.8: TCP has no record boundaries; one byte per segment is one "
          "stream")
def test_proto_wire_every_byte_a_segment(server, packet_evidence):
    """The first exchange's request sent one byte per TCP segment gets its declared reply.

    Trigger: a crafted connection sends the declaration's first request (framed)
    one byte per segment, 2 ms apart (30 ms around each byte of the framing's
    delimiter, so a parser looking for it only in the newest recv() misses it;
    a length prefix arrives a byte at a time too), and no FIN.
    Verdict: the declared reply arrives within 3 s of the last byte.
    Avoids: half-close (no FIN is sent) and judging how the stream ends.
    """
    protocol = server.protocol
    conversation, sent, wire = wire_request(protocol)
    slow = set(protocol.framing.forbidden())
    with wire_session(server, packet_evidence) as session:
        flow = session.connect(HANDSHAKE_TIMEOUT)
        for index in range(len(wire)):
            session.client.send(flow, flow.data(wire[index:index + 1]))
            pause = LINE_END_PAUSE_S if wire[index] in slow else BYTE_PAUSE_S
            session.client.pump(pause, lambda: False)  # ACK what the server sends meanwhile
        session.client.pump(REPLY_TIMEOUT, lambda: flow.server_fin or flow.server_rst or
                            reply_arrived(protocol, bytes(flow.received), False),
                            waiting_for="the declared reply")
        problem = judge_wire_reply(protocol, conversation, sent, bytes(flow.received),
                                   at_end=flow.server_fin)
        expect(problem is None,
               f"a request sent one byte per segment did not get its declared reply within "
               f"{REPLY_TIMEOUT:g} s: {problem}", exchange=protocol.exchanges[0].name,
               expected=protocol.exchanges[0].expect.describe(), segments_sent=len(wire),
               **_facts(flow, wire, session))


@scenario(HALF_CLOSE, profiles=(DECLARED,), needs=("answers_after_fin",),
          transports=("tcp", "tcp6"), not_on=WIRE_ONLY, needs_process_control=True,
          level=MUST,
          reason="RFC 9293 3.6 and 3.10.7.4: data and FIN in one segment are both "
          "delivered; the request is answered")
def test_proto_wire_request_and_fin_in_one_segment(server, packet_evidence):
    """The first request and the client's FIN in one TCP segment get the declared reply.

    Trigger: a crafted connection sends one segment with FIN, PSH and ACK carrying
    the declaration's whole first request (properties.answers_after_fin = true).
    Verdict: the declared reply arrives, then the server ends its side (FIN or
    RST: how it ends is graceful-close's business).
    Avoids: judging how the stream ends (FIN or RST: graceful-close's business).
    """
    protocol = server.protocol
    conversation, sent, wire = wire_request(protocol)
    with wire_session(server, packet_evidence) as session:
        flow = session.connect(HANDSHAKE_TIMEOUT)
        session.client.send(flow, flow.data(wire, fin=True))
        session.client.pump(REPLY_TIMEOUT, lambda: flow.server_fin or flow.server_rst,
                            waiting_for="the declared reply, then the server's FIN")
        problem = judge_wire_reply(protocol, conversation, sent, bytes(flow.received),
                                   at_end=flow.server_fin)
        facts = _facts(flow, wire, session)
        expect(problem is None, f"a request that came with FIN in the same segment did not "
               f"get its declared reply: {problem}", exchange=protocol.exchanges[0].name,
               expected=protocol.exchanges[0].expect.describe(), **facts)
        expect(flow.server_fin or flow.server_rst,
               f"after its reply, the server did not end the stream within {REPLY_TIMEOUT:g} s "
               "although the client's FIN came with the request", **facts)


@scenario(BACKLOG, profiles=(DECLARED,), needs=("exchange",), transports=("tcp", "tcp6"),
          not_on=WIRE_ONLY, needs_process_control=True, level=SHOULD,
          reason="listen()'s backlog is a hint (POSIX); a queue that holds 16 handshakes "
          "(SOMAXCONN) is common practice, not a requirement")
def test_proto_wire_backlog_syn_by_syn(server, metrics, packet_evidence):
    """16 crafted handshakes, one after another, all complete while the server is stopped.

    Trigger: the declaration's first exchange once (so the accept loop has taken
    every earlier connection), the server's process group stopped (SIGSTOP),
    then up to 17 SYNs from distinct ports one at a time, each ACKed as soon as
    its SYN-ACK arrives; the first SYN left unanswered for 0.5 s ends the count;
    the group is continued afterwards.
    Verdict: at least 16 handshakes complete; accept_queue_depth_syn is recorded.
    Avoids: half-close and any data on the crafted connections: only handshakes are counted.
    """
    # The same trigger and verdict as the echo/http version: its probe is the
    # declaration's first exchange (sockspec.drivers.load.probe_service).
    wire_backlog.test_wire_backlog_syn_by_syn(server, metrics, packet_evidence)
