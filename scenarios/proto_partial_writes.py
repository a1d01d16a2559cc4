"""partial-writes, for any declared protocol: a large reply read slowly arrives whole."""

from sockspec.catalogue import DECLARED, scenario
from sockspec.drivers.declared import NotPrepared, PacedSocket, large_values, ready_for
from sockspec.reference.client_streams import BackgroundSender
from sockspec.scenarios.partial_writes import PARTIAL_WRITES
from sockspec.transport import send_all
from sockspec.verdict import MUST, expect, fail

# SO_RCVBUF before connect() (the kernel doubles it): autotuning cannot grow the
# client's side to hold the whole reply, so while it pauses the server's sends must
# block or come up short.
CLIENT_RECEIVE_BUFFER = 256 * 1024
BURST_BYTES = 1024 * 1024
PAUSE_BEFORE_BURST_S = 0.025
# Bounds each wait for data (the whole reply takes well under a second); a reply
# cut short is noticed when this runs out.
IDLE_TIMEOUT = 3.0
PAYLOAD_SEED = 862


@scenario(PARTIAL_WRITES, profiles=(DECLARED,), needs=("large_reply",),
          level=MUST,
          reason="POSIX send() may write fewer bytes than asked; the declared reply is "
          "owed whole")
def test_proto_large_reply_slow_bursty_reader(server):
    """The declared large reply arrives whole to a client reading in bursts after pauses.

    Trigger: the [protocol.large_reply] sequence with its {payload} (size bytes), the
    requests before the last one sent whole; the last request is sent by a background
    thread while the client, with a small receive buffer, pauses 25 ms before each
    1 MiB burst of the reply.
    Verdict: the reply matches its declaration (every byte, in order).
    Avoids: half-close (no FIN before the reply is in) and judging how the stream ends.
    """
    protocol = server.protocol
    exchanges = protocol.sequence(protocol.large_reply)
    extra = large_values(protocol, PAYLOAD_SEED)
    try:
        with ready_for(protocol, server.address, len(exchanges) - 1, IDLE_TIMEOUT,
                       exchanges=exchanges, extra=extra,
                       receive_buffer=CLIENT_RECEIVE_BUFFER) as ready:
            sent, wire = ready.render(extra)
            paced = PacedSocket(ready.sock, BURST_BYTES, PAUSE_BEFORE_BURST_S)
            reader = ready.conversation.reader
            reader.sock = paced
            sender = BackgroundSender(ready.sock, lambda: send_all(ready.sock, wire),
                                      half_close_after=False)
            try:
                outcome = ready.receive(sent, wire, extra)
            finally:
                sender.finish(IDLE_TIMEOUT)
    except NotPrepared as exc:
        fail(str(exc), **exc.before[-1].facts())
    expect(outcome.ok, f"the large reply to {outcome.exchange.name!r}, read in bursts, was "
           f"not as declared: {outcome.problem}",
           **outcome.facts(),
           payload_bytes=len(extra["payload"]),
           reply_bytes_received=reader.received,
           stream_end=reader.end.value if reader.end else "open",
           bursts_read=paced.bursts,
           client_send_error=sender.error or "none")
