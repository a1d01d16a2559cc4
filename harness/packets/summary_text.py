"""The words of a capture summary: the packet summary shown beside a verdict's
evidence, and the lines a family cites from it (harness/packets/summary.py
gathers the facts)."""

from __future__ import annotations

import statistics

from sockspec.packets.summary import REPLY_GAP_REPORT_S, CaptureSummary, ConnectionFacts

MAX_CONNECTIONS_LISTED = 6


def seconds_words(t: float) -> str:
    """Loopback events are microseconds apart: milliseconds below a second."""
    return f"{t * 1000:.3f} ms" if abs(t) < 1 else f"{t:.3f} s"


def describe(summary: CaptureSummary) -> str:
    """The packet summary shown beside a verdict's evidence."""
    count = len(summary.connections)
    lines = [f"{summary.packets} TCP packets on {summary.interface} port {summary.server_port} "
             f"over {seconds_words(summary.duration)}, {count} connection{'s' if count != 1 else ''}"]
    if summary.lost_packets:
        lines.append(f"the kernel dropped {summary.lost_packets} packets before the capture "
                     "read them (buffer full during a bulk transfer): counts are lower bounds")
    if summary.truncated:
        lines.append("the capture stopped keeping packets at its cap: later ones are missing")
    if summary.restamped:
        lines.append(f"{summary.restamped} segments were stamped later than segments their "
                     f"numbers show came after them (by up to "
                     f"{seconds_words(summary.restamped_by)}): each connection is read in the "
                     "order its sequence and acknowledgement numbers allow, and such a segment "
                     "is given the time of the one after it")
    listed = [c for c in summary.connections if c.notable()][:MAX_CONNECTIONS_LISTED]
    if len(listed) < MAX_CONNECTIONS_LISTED:
        listed += [c for c in summary.connections if c not in listed][
            :MAX_CONNECTIONS_LISTED - len(listed)]
    for connection in sorted(listed, key=lambda c: c.start):
        number = summary.connections.index(connection) + 1
        lines += _describe_connection(number, connection, summary)
    rest = [c for c in summary.connections if c not in listed]
    if rest:
        clean = sum(1 for c in rest if not c.notable())
        lines.append(f"{len(rest)} more connections ({clean} of them ended with FIN from both "
                     "sides, no retransmission, no zero window, no reply gap)")
    return "\n".join(lines)


def _describe_connection(number: int, c: ConnectionFacts, summary: CaptureSummary) -> list[str]:
    origin = summary.connections[0].start
    lines = [f"connection {number}: client {c.client} -> server {c.server}, "
             f"+{seconds_words(c.start - origin)} for {seconds_words(c.end - c.start)}, "
             f"{c.packets} packets"]
    if c.handshake != "complete":
        lines.append(f"  handshake: {c.handshake}")
    lines.append(f"  sent: client {c.client_side.bytes_sent} bytes, "
                 f"server {c.server_side.bytes_sent} bytes")
    lines.append(f"  end: {end_words(c)}")
    lines.append(f"  retransmissions: {_retransmission_words(c)}")
    lines.append(f"  zero windows: {_zero_window_words(c)}")
    if c.exchanges:
        lines.append(f"  replies: {reply_words(c)}")
    return lines


def end_words(c: ConnectionFacts) -> str:
    """Who sent FIN and RST, when, after how many bytes; and who never did.

    In the connection's causal order (sockspec.packets.summary.causal_order), which
    equal times after a timestamp correction do not decide.
    """
    events = []
    for side in (c.client_side, c.server_side):
        if side.fin_at is not None:
            events.append((side.fin_position, f"{side.name} FIN at "
                           f"+{seconds_words(side.fin_at)} after {side.fin_after_bytes} bytes"))
        if side.rst_at is not None:
            events.append((side.rst_position, f"{side.name} RST at "
                           f"+{seconds_words(side.rst_at)} after {side.rst_after_bytes} bytes"))
    words = [text for _, text in sorted(events)]
    missing = [s.name for s in (c.client_side, c.server_side)
               if s.fin_at is None and s.rst_at is None]
    if missing and words:
        words.append(" and ".join(f"no FIN or RST from the {name}" for name in missing))
    return "; ".join(words) or "neither side sent FIN or RST during the capture"


def _retransmission_words(c: ConnectionFacts) -> str:
    words = []
    for side in (c.client_side, c.server_side):
        syn_retries = max(0, side.syns - 1)
        data = side.retransmitted_segments - syn_retries
        if syn_retries:
            kind = "SYN" if side is c.client_side else "SYN-ACK"
            words.append(f"{side.name} {kind} sent {side.syns} times")
        if data:
            words.append(f"{side.name} {data} segments ({side.retransmitted_bytes} bytes)")
    return ", ".join(words) or "none"


def _zero_window_words(c: ConnectionFacts) -> str:
    words = [f"{s.name} advertised 0 {s.zero_windows} times (first at "
             f"+{seconds_words(s.first_zero_window_at)})"
             for s in (c.client_side, c.server_side) if s.zero_windows]
    return ", ".join(words) or "none"


def reply_words(c: ConnectionFacts) -> str:
    answered = [e for e in c.exchanges if e.reply_times]
    if not answered:
        return f"{len(c.exchanges)} requests, no reply data"
    firsts = [e.first_reply_after or 0.0 for e in answered]
    text = (f"{len(answered)} answered requests; request -> first reply segment median "
            f"{statistics.median(firsts) * 1000:.2f} ms, max {max(firsts) * 1000:.2f} ms")
    gap, where = c.largest_reply_gap()
    if gap >= REPLY_GAP_REPORT_S:
        stalls = sum(1 for e in answered if e.nagle_stall())
        exchange = c.exchanges[where]
        _, before = exchange.largest_gap()
        text += (f"; largest gap inside a reply {gap * 1000:.1f} ms (request {where + 1}, after "
                 f"a {exchange.reply_sizes[before]}-byte segment)")
        if stalls:
            text += (f"; {stalls} of {len(answered)} replies stalled until the client's ACK "
                     "(Nagle: a small write, then the rest waits for the delayed ACK)")
    return text


# -- citing facts in a verdict -----------------------------------------------------------

# Which facts a failed verdict of a family cites. graceful-close and client-abort
# are about how connections ended; latency about where a reply waited.


def cite(summary: CaptureSummary, kind: str) -> str:
    """One or two lines for the evidence of a failed verdict whose family cites ``kind``
    (Family.cites: "ends" or "replies"; '' cites nothing)."""
    if kind not in ("ends", "replies") or not summary.connections:
        return ""
    if kind == "replies":
        stalled = [(c, e) for c in summary.connections for e in c.exchanges if e.nagle_stall()]
        gap, connection = max(((c.largest_reply_gap()[0], c) for c in summary.connections),
                              key=lambda pair: pair[0])
        if stalled:
            return (f"packets: {len(stalled)} replies stalled until the client's ACK "
                    f"(largest gap inside a reply {gap * 1000:.1f} ms): a small segment, then "
                    "the rest of the reply only after the client's delayed ACK")
        return f"packets: {reply_words(connection)}"
    # Connections opened before the capture (a readiness probe) are not the scenario's.
    own = [c for c in summary.connections if c.client_side.syns] or summary.connections
    notable = [c for c in own if c.notable()] or own
    lines = [f"packets: connection {summary.connections.index(c) + 1} of "
             f"{len(summary.connections)}: {end_words(c)}" for c in notable[:2]]
    if len(notable) > 2:
        lines.append(f"packets: {len(notable) - 2} more connections like these")
    return "\n".join(lines)
