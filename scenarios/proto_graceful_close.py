"""graceful-close, for any declared protocol: after the client's FIN the server ends with FIN, never RST."""

import time

from sockspec.catalogue import DECLARED, scenario
from sockspec.drivers.declared import NotPrepared, large_values, ready_for
from sockspec.scenarios.graceful_close import (
    GRACEFUL_CLOSE,
    _send_fin,
    confirmed_end,
    read_to_the_end,
    stream_end_words,
)
from sockspec.transport import StreamEnd, read_until_end, send_all
from sockspec.verdict import MUST, expect, fail

# Each wait for data, and for the stream to end once the client reads again.
STREAM_END_TIMEOUT = 5.0
# Bytes read past what is owed before giving up on seeing the end.
EXCESS_READ_LIMIT = 64 * 1024
# The mid-reply client: SO_RCVBUF before connect() (the kernel doubles it), so most
# of the large reply still waits on the server's side when our FIN reaches it.
CLIENT_RECEIVE_BUFFER = 64 * 1024
FIRST_READ_BYTES = 64 * 1024
# The client reads nothing for this long after its FIN: long enough for the server
# to finish writing what fits in the buffers, see our FIN and close.
READ_LATE_PAUSE_S = 0.3
PAYLOAD_SEED = 9293


def _expect_fin(end: StreamEnd, transport: str, after: str, **facts) -> None:
    facts = dict(stream_end=stream_end_words(end, transport), transport=transport, **facts)
    expect(end is not StreamEnd.RST,
           f"the server reset the connection {after} instead of ending it with FIN "
           "(SO_LINGER {1, 0}, or close() with unread input?)", **facts)
    expect(end is StreamEnd.FIN,
           f"the stream did not end with FIN {after}: {end.value} (waited "
           f"{STREAM_END_TIMEOUT:g} s)", **facts)


@scenario(GRACEFUL_CLOSE, profiles=(DECLARED,), needs=("answers_after_fin",),
          level=MUST,
          reason="RFC 9293 3.6 and 3.10.4: a connection ends with FIN after the client's "
          "FIN; an RST is an abort")
def test_proto_close_after_fin(server):
    """After every declared exchange is answered and the client sends its FIN, the stream ends with FIN.

    Trigger: every exchange in order, each reply read whole; only then our FIN
    (shutdown(SHUT_WR)), and a read until the stream ends.
    Verdict: the server ends the stream with FIN (EOF), not RST (ECONNRESET).
    Avoids: a request arriving with the FIN (half-close's trigger): the FIN goes out
    only once every reply is in.
    """
    protocol = server.protocol
    last = len(protocol.exchanges) - 1
    try:
        with ready_for(protocol, server.address, last, STREAM_END_TIMEOUT) as ready:
            outcome = ready.conversation.run(ready.exchange)
            if not outcome.ok:
                fail(f"exchange {outcome.exchange.name!r} was not answered as declared, so "
                     f"the end of the stream cannot be judged: {outcome.problem}",
                     **outcome.facts())
            reader = ready.conversation.reader
            fin_error = _send_fin(ready.sock)
            if reader.end is None:
                _, end, settled = read_to_the_end(ready.sock, EXCESS_READ_LIMIT,
                                                  STREAM_END_TIMEOUT)
            else:
                end, settled = confirmed_end(ready.sock, reader.end)
    except NotPrepared as exc:
        fail(str(exc), **exc.before[-1].facts())
    _expect_fin(end, server.transport, "after the client's FIN",
                client_fin=f"after the reply to {outcome.exchange.name!r} was read whole",
                fin_error=fin_error or "none", **settled)


@scenario(GRACEFUL_CLOSE, profiles=(DECLARED,), needs=("answers_after_fin", "large_reply"),
          level=MUST,
          reason="RFC 9293 3.6 and 3.10.4: after the client's FIN the server still sends "
          "what it owes; an abort (SO_LINGER {1, 0}) discards reply bytes")
def test_proto_close_after_fin_mid_reply(server):
    """A client that half-closes in the middle of the large reply and reads late sees the stream end with FIN.

    Trigger: with a small receive buffer, the [protocol.large_reply] sequence; once
    the first 64 KiB of the last reply are read, our FIN; nothing read for 300 ms,
    then everything until the stream ends. Most of the reply still waits on the
    server's side when our FIN reaches it.
    Verdict: the stream ends with FIN, not RST/ECONNRESET (an RST also discards the
    reply bytes still queued). Only the end is judged; the reply's bytes are in the
    evidence (a reply cut short is partial-writes' business).
    Avoids: a request arriving with the FIN (half-close's trigger): the FIN goes out
    only once the server has read the request and is answering.
    """
    protocol = server.protocol
    exchanges = protocol.sequence(protocol.large_reply)
    extra = large_values(protocol, PAYLOAD_SEED)
    try:
        with ready_for(protocol, server.address, len(exchanges) - 1, STREAM_END_TIMEOUT,
                       exchanges=exchanges, extra=extra,
                       receive_buffer=CLIENT_RECEIVE_BUFFER) as ready:
            _, wire = ready.render(extra)
            send_all(ready.sock, wire)
            first, end = read_until_end(ready.sock, STREAM_END_TIMEOUT, FIRST_READ_BYTES)
            fin_error, fin_after, rest, settled = None, None, b"", {}
            if end is StreamEnd.LIMIT:
                fin_after = len(first)
                fin_error = _send_fin(ready.sock)
                time.sleep(READ_LATE_PAUSE_S)  # the trigger: a client that reads late
                rest, end, settled = read_to_the_end(
                    ready.sock, len(wire) + 2 * len(extra["payload"]) + EXCESS_READ_LIMIT,
                    STREAM_END_TIMEOUT)
    except NotPrepared as exc:
        fail(str(exc), **exc.before[-1].facts())
    received = first + rest
    try:
        whole = protocol.framing.decode(received, at_end=end is StreamEnd.FIN) is not None
    except ValueError as exc:
        whole = f"no: {exc}"
    _expect_fin(end, server.transport, f"after {len(received)} reply bytes",
                client_fin=f"after {fin_after} reply bytes were read" if fin_after is not None
                else "never sent: the stream ended first",
                reply_bytes_received=len(received),
                a_whole_reply_frame_arrived="yes" if whole is True else whole or "no",
                read_paused_s=READ_LATE_PAUSE_S, fin_error=fin_error or "none", **settled)
