"""Wire-level variants of four families: exact segments a socket client cannot promise.

Each scenario starts the target again inside a private network namespace and
talks to it with crafted TCP segments (sockspec.drivers.wire), so the trigger
is exactly what the docstring says: every byte its own segment, data and FIN
in one segment, a segment that arrives after the server has answered, an RST
in the middle of a response. Each checks the property of the family it joins
(partial-reads, half-close, graceful-close, client-abort), so a defect still
shows up in its own family. TCP over IPv4 and IPv6 (harness/packets/lab.py
says how each reaches the server); skipped with the reason when the machine
cannot build the namespace.
"""

from sockspec.catalogue import scenario
from sockspec.drivers.http import counting_bytes
from sockspec.drivers.load import settle_count
from sockspec.drivers.peer import ReadAlone
from sockspec.drivers.streams import parse_small_response, printable_payload
from sockspec.drivers.wire import wire_session
from sockspec.reference.http_fetch import build_get_request, host_header
from sockspec.scenarios.client_abort import CLIENT_ABORT
from sockspec.scenarios.graceful_close import GRACEFUL_CLOSE
from sockspec.scenarios.half_close import HALF_CLOSE
from sockspec.scenarios.partial_reads import PARTIAL_READS
from sockspec.verdict import MUST, SHOULD, expect, expect_same_bytes

WIRE_ONLY = {"unix": "Unix stream sockets have no segments to craft"}
HANDSHAKE_TIMEOUT = 2.0
REPLY_TIMEOUT = 3.0
# Pauses between one-byte segments, longer around CR and LF, where a parser that
# looks for the end of the head in the newest chunk only fails. After the pause,
# each next byte also waits until the server has read all sent so far (at most
# READ_WAIT_S: one that leaves a byte unread that long has stopped reading), so its
# recv() returns each byte alone however busy the machine is.
BYTE_PAUSE_S = 0.002
LINE_END_PAUSE_S = 0.03
READ_WAIT_S = 1.0
# Bodies are whole 4 KiB blocks and small, so servers with other defects
# (a lost partial block, short writes) fail their own families, not these.
SMALL_BODY_BYTES = 8 * 1024
ECHO_MESSAGE_BYTES = 1000          # under the 1460-byte MSS: one segment with the FIN
# After the late segment, how long the server has to show an RST (it comes
# within microseconds when it comes), and then to acknowledge our FIN.
LATE_SEGMENT_WAIT_S = 0.2
# Before the late segment: how long a server that is done with the connection
# has to close it (its descriptor count falls back); a server that reads until
# the client's FIN keeps it, and the segment goes after this long.
LET_GO_WAIT_S = 1.0
FDS_STABLE_S = 0.2
# The aborted download: far longer than the server's send buffer (tcp_wmem max
# 4 MiB), sparse so it costs no disk; the client stops reading (zero window)
# after a part, so the server is blocked mid-sendfile() when the RST arrives.
ABORTED_BODY_BYTES = 64 * 1024 * 1024
RESET_AFTER_BYTES = 256 * 1024
PROBE_TIMEOUT = 5.0
# The server lets go of a reset connection within microseconds; past this we judge anyway.
SETTLE_TIMEOUT = 5.0


def get_request(session, path: str) -> bytes:
    """The GET a real client sends to the copy in the namespace, Host included."""
    return build_get_request(path, host=host_header(session.server.address))


def send_byte_by_byte(session, flow, data: bytes) -> str:
    """Send ``data`` one byte per segment; say whether the server read each byte alone."""
    def pump(seconds: float) -> None:
        session.client.pump(seconds, lambda: False)  # ACK what the server sends meanwhile

    sent = 0
    alone = ReadAlone(lambda: session.server_has_read(flow, sent), READ_WAIT_S, idle=pump,
                      unit="byte")
    for index in range(len(data)):
        if index:
            alone.before_next(index)
        session.client.send(flow, flow.data(data[index:index + 1]))
        sent += 1
        pump(LINE_END_PAUSE_S if data[index:index + 1] in (b"\r", b"\n") else BYTE_PAUSE_S)
    return alone.words()


@scenario(PARTIAL_READS, profiles=("echo",), transports=("tcp", "tcp6"), not_on=WIRE_ONLY,
          needs_process_control=True,
          level=MUST,
          reason="RFC 9293 3.8: TCP has no record boundaries; one byte per segment is one "
          "stream")
def test_wire_echo_every_byte_a_segment(server, packet_evidence):
    """A message sent one byte per TCP segment comes back whole.

    Trigger: a crafted connection sends a 40-byte message as 40 one-byte
    segments, 2 ms apart (30 ms around the newline), each once the server has
    read the ones before (at most 1 s). Verdict: all 40 bytes come
    back, in order, while the connection stays open.
    Avoids: half-close (no FIN is sent) and judging how the stream ends.
    """
    message = b"wire: one byte per segment, forty bytes\n"
    with wire_session(server, packet_evidence) as session:
        flow = session.connect(HANDSHAKE_TIMEOUT)
        read_alone = send_byte_by_byte(session, flow, message)
        session.client.drain(flow, REPLY_TIMEOUT, len(message))
        expect_same_bytes(message, bytes(flow.received), "echo of a message sent a byte per "
                          "segment", segments_sent=len(message),
                          server_read_each_byte_alone=read_alone, server_fin=flow.server_fin,
                          server_rst=flow.server_rst, **session.server_facts())


@scenario(PARTIAL_READS, profiles=("http",), transports=("tcp", "tcp6"), not_on=WIRE_ONLY,
          needs_process_control=True,
          level=MUST,
          reason="RFC 9293 3.8 and RFC 9112 2.2: a request head is parsed from a stream, "
          "whatever its segments")
def test_wire_http_head_every_byte_a_segment(server, packet_evidence):
    """A request head sent one byte per TCP segment is answered with 200 and the file.

    Trigger: a crafted connection sends the GET request one byte per segment
    (2 ms apart, 30 ms around CR and LF, each once the server has read the ones
    before, at most 1 s: so even the blank line ending the head is split) and no
    FIN. Verdict: status 200 and the file's exact bytes
    within 3 s of the last byte.
    Avoids: half-close (no FIN is sent) and judging how the stream ends.
    """
    body = counting_bytes(SMALL_BODY_BYTES, start=3)
    with wire_session(server, packet_evidence) as session:
        request = build_get_request("/wire-bytes.bin", host=host_header(session.server.address))
        session.server.put_file("wire-bytes.bin", body)
        flow = session.connect(HANDSHAKE_TIMEOUT)
        read_alone = send_byte_by_byte(session, flow, request)
        session.client.drain(flow, REPLY_TIMEOUT, len(body) + 4096)
        response = parse_small_response(bytes(flow.received))
        facts = dict(request=request.decode(), segments_sent=len(request),
                     server_read_each_byte_alone=read_alone,
                     bytes_received=len(flow.received), server_fin=flow.server_fin,
                     server_rst=flow.server_rst, **session.server_facts())
        expect(response.head is not None and response.head.status == 200,
               f"a request head sent one byte per segment got no 200 response within "
               f"{REPLY_TIMEOUT:g} s (a server that looks for the blank line only in the "
               "newest recv() never sees it)", status_line=response.status_line, **facts)
        expect_same_bytes(body, response.body[:len(body)], "body of /wire-bytes.bin", **facts)


@scenario(HALF_CLOSE, profiles=("echo",), transports=("tcp", "tcp6"), not_on=WIRE_ONLY,
          needs_process_control=True,
          level=MUST,
          reason="RFC 9293 3.6 and 3.10.7.4: data and FIN in one segment are both "
          "delivered; the data is answered")
def test_wire_echo_data_and_fin_in_one_segment(server, packet_evidence):
    """1000 bytes and the client's FIN in one TCP segment are all echoed, then the stream ends.

    Trigger: a crafted connection sends one segment with FIN, PSH and ACK
    carrying 1000 bytes. Verdict: the 1000 bytes come back unchanged and the
    server ends its side (FIN or RST: how it ends is graceful-close's business).
    Avoids: judging how the stream ends (FIN or RST: graceful-close's business).
    """
    # Printable: a server stopping at NUL fails binary-integrity, not this.
    message = printable_payload(ECHO_MESSAGE_BYTES, seed=11)
    with wire_session(server, packet_evidence) as session:
        flow = session.connect(HANDSHAKE_TIMEOUT)
        session.client.send(flow, flow.data(message, fin=True))
        session.client.drain(flow, REPLY_TIMEOUT, len(message) + 4096)
        facts = dict(server_fin=flow.server_fin, server_rst=flow.server_rst,
                     **session.server_facts())
        expect_same_bytes(message, bytes(flow.received), "echo of data sent with FIN in one "
                          "segment", **facts)
        if not (flow.server_fin or flow.server_rst):
            session.client.drain(flow, REPLY_TIMEOUT, len(message) + 4096)
        expect(flow.server_fin or flow.server_rst,
               f"after echoing, the server did not end the stream within {REPLY_TIMEOUT:g} s "
               "although the client's FIN came with the data", **facts)


@scenario(HALF_CLOSE, profiles=("http",), transports=("tcp", "tcp6"), not_on=WIRE_ONLY,
          needs_process_control=True,
          level=MUST,
          reason="RFC 9293 3.6: a request that arrives with the client's FIN is answered "
          "in full")
def test_wire_http_request_and_fin_in_one_segment(server, packet_evidence):
    """A GET request and the client's FIN in one TCP segment get the whole response.

    Trigger: a crafted connection sends one segment with FIN, PSH and ACK
    carrying the whole request. Verdict: status 200, the file's exact bytes,
    then the server ends its side.
    Avoids: judging how the stream ends (FIN or RST: graceful-close's business).
    """
    body = counting_bytes(SMALL_BODY_BYTES, start=5)
    with wire_session(server, packet_evidence) as session:
        session.server.put_file("wire-fin.bin", body)
        flow = session.connect(HANDSHAKE_TIMEOUT)
        session.client.send(flow, flow.data(get_request(session, "/wire-fin.bin"), fin=True))
        session.client.drain(flow, REPLY_TIMEOUT, len(body) + 4096 + 1)
        response = parse_small_response(bytes(flow.received))
        facts = dict(bytes_received=len(flow.received), server_fin=flow.server_fin,
                     server_rst=flow.server_rst, **session.server_facts())
        expect(response.head is not None and response.head.status == 200,
               "a request that came with FIN in the same segment got no 200 response",
               status_line=response.status_line, **facts)
        expect_same_bytes(body, response.body, "body of /wire-fin.bin", **facts)
        expect(flow.server_fin or flow.server_rst,
               "the server did not end the stream after the response", **facts)


@scenario(GRACEFUL_CLOSE, profiles=("http",), transports=("tcp", "tcp6"), not_on=WIRE_ONLY,
          needs_process_control=True,
          level=SHOULD,
          reason="RFC 1122 4.2.2.13 lets a fully closed socket answer late data with RST; "
          "RFC 9112 9.6's staged close (read to the client's FIN) is common "
          "practice")
def test_wire_segment_after_the_response(server, packet_evidence):
    """A segment arriving after the server's whole response and FIN is acknowledged, not reset.

    Trigger: a crafted connection GETs an 8 KiB file, reads the response and the
    server's FIN, waits until the server has closed its descriptor for the
    connection (at most 1 s: one that reads until the client's FIN keeps it),
    then sends a late 2-byte segment (a stray CRLF), waits 0.2 s and sends its
    own FIN. Verdict: no RST from the server: a server that reads
    until the client's FIN takes the late bytes; one that close()d at once
    answers them with RST, which destroys the response of a client still reading.
    Avoids: half-close: the client's FIN comes only after the server's whole response and
    FIN.
    """
    body = counting_bytes(SMALL_BODY_BYTES, start=9)
    with wire_session(server, packet_evidence) as session:
        session.server.put_file("wire-late.bin", body)
        fds_before = settle_count(session.server.fd_count, at_most=None, stable_for=FDS_STABLE_S,
                                  timeout=SETTLE_TIMEOUT).value
        flow = session.connect(HANDSHAKE_TIMEOUT)
        session.client.send(flow, flow.data(get_request(session, "/wire-late.bin")))
        session.client.drain(flow, REPLY_TIMEOUT, len(body) + 4096 + 1)
        before_late = dict(response_bytes=len(flow.received),
                           response_ended_with="RST" if flow.server_rst else
                           "FIN" if flow.server_fin else "nothing yet")
        expect(flow.server_fin and not flow.server_rst,
               "the server did not finish its response with FIN (the trigger needs it)",
               level=MUST,
               **before_late, **session.server_facts())
        # The late segment must come after a server that is done has closed, or a
        # server slow to run between its FIN and its close() reads it in time.
        let_go = settle_count(session.server.fd_count, at_most=fds_before,
                              stable_for=LET_GO_WAIT_S, timeout=LET_GO_WAIT_S)
        before_late["server_let_go_before_the_late_segment"] = (
            f"yes, {let_go.waited_s:.3f} s after its FIN arrived (descriptors back to "
            f"{fds_before})" if let_go.how == "reached" else
            f"no, it still held the connection {let_go.waited_s:.1f} s after its FIN "
            f"({let_go.value} descriptors, {fds_before} before)")
        session.client.send(flow, flow.data(b"\r\n"))
        session.client.pump(LATE_SEGMENT_WAIT_S, lambda: flow.server_rst,
                            waiting_for="an RST to the late segment (none is right)")
        if not flow.server_rst:
            session.client.send(flow, flow.data(b"", fin=True))
            session.client.pump(LATE_SEGMENT_WAIT_S, lambda: flow.server_rst
                                or flow.unacknowledged == 0,
                                waiting_for="the server to acknowledge the client's FIN")
        expect(not flow.server_rst,
               "the server answered a segment that arrived after its response with RST: it "
               "close()d without reading until the client's FIN, so a client whose response "
               "is still unread loses it",
               late_segment="2 bytes (CRLF) after the server's FIN", **before_late,
               events="; ".join(text for _, text in flow.events), **session.server_facts())


@scenario(CLIENT_ABORT, profiles=("http",), transports=("tcp", "tcp6"), not_on=WIRE_ONLY,
          needs_process_control=True,
          level=MUST,
          reason="an RST ends that connection only (RFC 9293 3.10.7.4, POSIX EPIPE)")
def test_wire_reset_in_the_middle_of_a_response(server, packet_evidence):
    """After a client's RST in the middle of a 64 MiB response, the server serves the next request.

    Trigger: a crafted connection sends its GET and FIN in one segment, takes
    in the first 256 KiB of a 64 MiB file, advertises a zero window, and sends
    RST while the server is blocked sending (its sendfile() fails with EPIPE:
    the socket was in CLOSE_WAIT, so the reset is reported as EPIPE and raises
    SIGPIPE). Verdict: once the
    server has let go of the connection (its descriptor count is back, or it
    died), it is alive and a fresh GET from inside the namespace succeeds.
    Avoids: judging the response: the GET with FIN and the RST are the trigger, only the
    server's survival is judged.
    """
    with wire_session(server, packet_evidence) as session:
        session.server.put_sparse_file("wire-abort.bin", ABORTED_BODY_BYTES, b"end\n")
        baseline = session.probe(PROBE_TIMEOUT)
        expect(baseline.ok, "the server did not serve a first request", probe=baseline.detail,
               **session.server_facts())
        fds_before = settle_count(session.server.fd_count, at_most=None, stable_for=FDS_STABLE_S,
                                  timeout=SETTLE_TIMEOUT).value
        flow = session.connect(HANDSHAKE_TIMEOUT)
        flow.close_window_at = RESET_AFTER_BYTES
        session.client.send(flow, flow.data(get_request(session, "/wire-abort.bin"), fin=True))
        session.client.drain(flow, REPLY_TIMEOUT, RESET_AFTER_BYTES)
        received = len(flow.received)
        # A response cut short (FIN or RST before our reset) is other families' business:
        # the reset still comes, and only survival is judged here.
        cut_short = ("no" if received >= RESET_AFTER_BYTES else
                     f"yes: the server ended it with {'RST' if flow.server_rst else 'FIN'} "
                     f"after {received} bytes, before the client's reset")
        session.client.send(flow, flow.reset())
        settled = settle_count(session.server.fd_count, at_most=fds_before, stable_for=1.0,
                               timeout=SETTLE_TIMEOUT)
        probe = session.probe(PROBE_TIMEOUT)
        expect(session.server.alive() and probe.ok,
               f"after a client reset its download at {received} of {ABORTED_BODY_BYTES} "
               "bytes, the server no longer served a fresh request",
               probe=probe.detail, server_fds_after_reset=f"{settled.value} ({settled.how})",
               response_cut_short_before_reset=cut_short,
               **session.server_facts())
