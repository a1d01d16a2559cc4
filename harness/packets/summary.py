"""Facts from captured segments: who ended each connection and how, and where time went.

Pure functions over Segment records (sockspec.packets.frames); no sockets, no
files. The words shown beside a verdict are harness/packets/summary_text.py's. For each TCP connection to the server's port:
- who sent FIN and who sent RST, when (seconds after the connection's first
  packet) and after how many bytes that side had sent;
- retransmissions (a segment whose sequence range was already sent) and
  SYN/SYN-ACK retransmissions;
- zero-window advertisements (the receiver's buffer is full);
- request -> reply timing: the client's data, then the server's data segments
  until the client speaks again form one exchange. A reply written as two small
  writes with Nagle on shows as a first small segment, then a ~40 ms gap that
  ends just after the client's (delayed) ACK: Linux delays an ACK by at least
  TCP_ATO_MIN = 40 ms (HZ/25).

Capture timestamps do not always follow cause and effect: on lo a segment can
be stamped milliseconds after the peer's ACK of it. So the segments of each
connection are put in causal order first (causal_order): a segment that
acknowledges the peer's sequence number X comes after the peer's segment
carrying X; timestamps only break ties. A segment stamped later than a segment caused by it
is given that segment's time, so times never go backwards in that order.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from dataclasses import dataclass, field, replace

from sockspec.packets.frames import ACK, FIN, RST, SYN, Endpoint, Segment

SEQ_SPACE = 1 << 32
# A gap inside one reply this long is worth reporting; a loopback reply segment
# follows the previous one within microseconds unless something waited.
REPLY_GAP_REPORT_S = 0.020
# Nagle holds a segment smaller than the MSS while earlier data is unacknowledged;
# a first write this small followed by a gap is the classic two-writes stall.
NAGLE_SMALL_SEGMENT_BYTES = 536
# The stalled rest of the reply leaves as soon as the client's ACK arrives.
NAGLE_ACK_TO_SEND_S = 0.005


@dataclass
class SideFacts:
    """What one side of a connection did."""

    name: str                              # "client" or "server"
    bytes_sent: int = 0                    # new payload bytes (retransmissions not counted)
    syns: int = 0                          # SYN or SYN-ACK segments, retransmissions included
    fin_at: float | None = None            # seconds after the connection's first packet
    fin_after_bytes: int = 0
    fin_position: int = 0                  # its place in the connection's causal order
    rst_at: float | None = None
    rst_after_bytes: int = 0
    rst_position: int = 0
    retransmitted_segments: int = 0
    retransmitted_bytes: int = 0
    zero_windows: int = 0
    first_zero_window_at: float | None = None
    _base: int | None = None               # sequence number of data byte 0
    _high: int = 0                         # highest data offset sent, unwrapped

    def offset(self, seq: int) -> int:
        """Unwrapped offset of ``seq`` from data byte 0 (the ISN+1 after a SYN).

        Sequence numbers wrap at 4 GiB: pick the offset nearest to what was sent so far.
        """
        if self._base is None:
            self._base = seq
        raw = (seq - self._base) % SEQ_SPACE
        turns = (self._high - raw + SEQ_SPACE // 2) // SEQ_SPACE
        return raw + turns * SEQ_SPACE


@dataclass
class Exchange:
    """One request (client data) and the server data that answered it."""

    request_end: float
    reply_times: list[float] = field(default_factory=list)
    reply_sizes: list[int] = field(default_factory=list)
    client_acks: list[float] = field(default_factory=list)

    @property
    def first_reply_after(self) -> float | None:
        return self.reply_times[0] - self.request_end if self.reply_times else None

    def largest_gap(self) -> tuple[float, int]:
        """(seconds, index of the reply segment before the gap); (0, -1) without a gap."""
        best, where = 0.0, -1
        for i in range(1, len(self.reply_times)):
            gap = self.reply_times[i] - self.reply_times[i - 1]
            if gap > best:
                best, where = gap, i - 1
        return best, where

    def nagle_stall(self) -> bool:
        """A small segment, a gap, and the rest sent right after the client's ACK."""
        gap, where = self.largest_gap()
        if gap < REPLY_GAP_REPORT_S or self.reply_sizes[where] >= NAGLE_SMALL_SEGMENT_BYTES:
            return False
        resumed = self.reply_times[where + 1]
        return any(0 <= resumed - t <= NAGLE_ACK_TO_SEND_S for t in self.client_acks)


@dataclass
class ConnectionFacts:
    client: Endpoint
    server: Endpoint
    start: float                     # time of the first packet (the capture's clock)
    end: float = 0.0
    packets: int = 0
    client_side: SideFacts = field(default_factory=lambda: SideFacts("client"))
    server_side: SideFacts = field(default_factory=lambda: SideFacts("server"))
    exchanges: list[Exchange] = field(default_factory=list)
    client_isn: int | None = None

    def side(self, segment: Segment) -> SideFacts:
        return self.client_side if segment.src == self.client else self.server_side

    @property
    def handshake(self) -> str:
        if self.client_side.syns == 0:
            return "not seen (the connection was open before the capture started)"
        if self.server_side.syns == 0:
            return "SYN not answered"
        return "complete"

    def ended(self) -> bool:
        """Both sides sent FIN, or someone sent RST: nothing more is owed."""
        c, s = self.client_side, self.server_side
        return (c.fin_at is not None and s.fin_at is not None) or \
            c.rst_at is not None or s.rst_at is not None

    def notable(self) -> bool:
        c, s = self.client_side, self.server_side
        return (not self.ended() or c.rst_at is not None or s.rst_at is not None
                or c.retransmitted_segments + s.retransmitted_segments > 0
                or c.zero_windows + s.zero_windows > 0
                or self.largest_reply_gap()[0] >= REPLY_GAP_REPORT_S)

    def largest_reply_gap(self) -> tuple[float, int]:
        """(seconds, exchange index); (0, -1) when no reply had two segments."""
        best, where = 0.0, -1
        for i, exchange in enumerate(self.exchanges):
            gap, _ = exchange.largest_gap()
            if gap > best:
                best, where = gap, i
        return best, where


@dataclass
class CaptureSummary:
    interface: str
    server_port: int
    packets: int
    duration: float
    connections: list[ConnectionFacts]
    lost_packets: int = 0            # dropped by the kernel before the capture read them
    truncated: bool = False          # the capture stopped keeping packets at its cap
    restamped: int = 0               # segments whose timestamp contradicted the numbers
    restamped_by: float = 0.0        # the largest such correction, seconds

    def metrics(self) -> dict[str, float]:
        sides = [s for c in self.connections for s in (c.client_side, c.server_side)]
        gap = max((c.largest_reply_gap()[0] for c in self.connections), default=0.0)
        return {
            "packets_captured": self.packets,
            "packets_retransmitted": sum(s.retransmitted_segments for s in sides),
            "packets_zero_windows": sum(s.zero_windows for s in sides),
            "packets_max_reply_gap_ms": round(gap * 1000, 3),
        }


def summarize(segments: list[Segment], server_port: int, interface: str = "lo",
              lost_packets: int = 0, truncated: bool = False) -> CaptureSummary:
    """Group segments into connections (the server is the side using ``server_port``).

    Each connection's segments are accounted in causal order (causal_order), not
    in timestamp order. A new connection reusing a port pair is told apart by
    its SYN in timestamp order: TIME_WAIT keeps pairs apart far longer than any
    timestamp error.
    """
    ordered = sorted(segments, key=lambda s: s.time)
    groups: list[tuple[Endpoint, Endpoint, list[Segment]]] = []
    open_by_pair: dict[tuple[Endpoint, Endpoint], tuple[int | None, list[Segment]]] = {}
    for segment in ordered:
        if segment.dst.port == server_port:
            client, server = segment.src, segment.dst
        elif segment.src.port == server_port:
            client, server = segment.dst, segment.src
        else:
            continue
        current = open_by_pair.get((client, server))
        is_syn = segment.src == client and segment.has(SYN) and not segment.has(ACK)
        if current is None or (is_syn and current[0] != segment.seq):
            current = (segment.seq if is_syn else None, [])   # a new connection
            groups.append((client, server, current[1]))
            open_by_pair[(client, server)] = current
        current[1].append(segment)
    connections: list[ConnectionFacts] = []
    restamped, restamped_by = 0, 0.0
    for client, server, group in groups:
        causal, moved, by = causal_order(group)
        restamped += moved
        restamped_by = max(restamped_by, by)
        connection = ConnectionFacts(client, server, start=causal[0].time)
        for segment in causal:
            _account(connection, segment)
        connections.append(connection)
    connections.sort(key=lambda c: c.start)
    duration = ordered[-1].time - ordered[0].time if ordered else 0.0
    return CaptureSummary(interface, server_port, len(ordered), duration, connections,
                          lost_packets, truncated, restamped, restamped_by)


# -- causal order --------------------------------------------------------------------------


def _unwrap(value: int, base: int, near: int) -> int:
    """``value``'s offset from ``base`` in sequence space, the one nearest to ``near``."""
    raw = (value - base) % SEQ_SPACE
    return raw + (near - raw + SEQ_SPACE // 2) // SEQ_SPACE * SEQ_SPACE


def causal_order(segments: list[Segment]) -> tuple[list[Segment], int, float]:
    """One connection's segments in an order the sequence and acknowledgement numbers allow.

    Two rules, both true of any TCP sender, whatever was retransmitted: a
    segment acknowledging up to X comes after every segment of the peer that
    carries sequence numbers (data, SYN or FIN) below X; and a segment whose
    sequence number is S comes after every segment of its own side that ends
    at or before S (new data leaves in sequence order, and anything sent later,
    a retransmission, an ACK, FIN or RST, carries a number at least that far).
    Each side's segments ending at one point (the earliest stamped copy, when
    retransmitted) feed a barrier node, chained in sequence order, so the
    graph stays linear in size. Among segments free to come next, the earliest
    stamped goes first (a stable topological sort); a cycle, which only wrong
    numbers can make, is broken by the timestamp too. Then, going backwards, a
    segment stamped later than the one after it gets that one's time.

    Returns (segments with corrected times, how many were corrected, the
    largest correction in seconds).
    """
    count = len(segments)
    by_time = sorted(range(count), key=lambda i: (segments[i].time, i))
    sides: dict[Endpoint, list[int]] = {}
    for i in by_time:
        sides.setdefault(segments[i].src, []).append(i)
    # Sequence offsets of each side from its ISN (or its first number seen).
    start, end = [0] * count, [0] * count
    base: dict[Endpoint, int] = {}
    for side, members in sides.items():
        syns = [i for i in members if segments[i].has(SYN)]
        base[side] = segments[syns[0] if syns else members[0]].seq
        near = 0
        for i in members:
            start[i] = near = _unwrap(segments[i].seq, base[side], near)
            end[i] = start[i] + segments[i].sequence_space
    successors: list[list[int]] = [[] for _ in range(count)]
    waiting = [0] * count

    def edge(before: int, after: int) -> None:
        successors[before].append(after)
        waiting[after] += 1

    def node() -> int:   # a barrier: not a segment, placed as soon as it is free
        successors.append([])
        waiting.append(0)
        return len(successors) - 1

    barrier_chains: dict[Endpoint, tuple[list[int], list[int], dict[int, int]]] = {}
    for side, members in sides.items():
        carriers: dict[int, int] = {}          # end offset -> earliest stamped segment
        for i in members:
            if segments[i].sequence_space:
                carriers.setdefault(end[i], i)
        ends = sorted(carriers)
        barriers: list[int] = []
        for position in ends:
            barrier = node()
            edge(carriers[position], barrier)
            if barriers:
                edge(barriers[-1], barrier)
            barriers.append(barrier)
        barrier_chains[side] = (ends, barriers, carriers)

    def after_everything_below(side: Endpoint, position: int, i: int) -> None:
        """Segment ``i`` after every segment of ``side`` ending at or before ``position``."""
        ends, barriers, _ = barrier_chains[side]
        below = bisect_right(ends, position) - 1
        if below >= 0:
            edge(barriers[below], i)

    for side, members in sides.items():
        for i in members:
            after_everything_below(side, start[i], i)
        peer = next((s for s in sides if s != side), None)
        if peer is None:
            continue
        ends, _, carriers = barrier_chains[peer]
        spans = sorted((start[j], end[j], j) for j in carriers.values())
        starts = [span[0] for span in spans]
        near = 0
        for i in members:
            if not segments[i].has(ACK):
                continue
            near = acked = _unwrap(segments[i].ack, base[peer], near)
            after_everything_below(peer, acked, i)
            if acked in carriers:
                continue
            # Acknowledges part of a segment: that segment came first too.
            k = bisect_right(starts, acked - 1) - 1
            for _ in range(8):   # overlapping copies of one range sit side by side
                if k < 0:
                    break
                if spans[k][1] > acked:
                    edge(spans[k][2], i)
                    break
                k -= 1
    order = _stable_topological_order(segments, by_time, successors, waiting)
    corrected: list[Segment] = []
    moved, by, later = 0, 0.0, float("inf")
    for i in reversed(order):
        segment = segments[i]
        if segment.time > later:
            moved += 1
            by = max(by, segment.time - later)
            segment = replace(segment, time=later)
        later = segment.time
        corrected.append(segment)
    corrected.reverse()
    return corrected, moved, by


def _stable_topological_order(segments: list[Segment], by_time: list[int],
                              successors: list[list[int]], waiting: list[int]) -> list[int]:
    """Kahn's algorithm, the ready segment stamped earliest first; barrier nodes (past the
    segments) go at once; a cycle is broken at the earliest stamped segment not placed."""
    count = len(segments)
    placed = [False] * len(successors)

    def key(n: int) -> tuple[float, int]:
        return (segments[n].time if n < count else float("-inf"), n)

    ready = [key(n) for n in range(len(successors)) if waiting[n] == 0]
    heapq.heapify(ready)
    order: list[int] = []
    next_by_time = 0
    while len(order) < count:
        if not ready:
            while placed[by_time[next_by_time]]:
                next_by_time += 1
            heapq.heappush(ready, key(by_time[next_by_time]))
        _, n = heapq.heappop(ready)
        if placed[n]:
            continue
        placed[n] = True
        if n < count:
            order.append(n)
        for after in successors[n]:
            waiting[after] -= 1
            if waiting[after] == 0 and not placed[after]:
                heapq.heappush(ready, key(after))
    return order


def _account(connection: ConnectionFacts, segment: Segment) -> None:
    side = connection.side(segment)
    at = segment.time - connection.start
    connection.packets += 1
    connection.end = segment.time
    if segment.has(SYN):
        side.syns += 1
        side._base = (segment.seq + 1) % SEQ_SPACE  # data byte 0 follows the SYN
        if segment.src == connection.client and connection.client_isn is None:
            connection.client_isn = segment.seq
        if side.syns > 1:
            side.retransmitted_segments += 1
        return
    if segment.has(RST):
        if side.rst_at is None:
            side.rst_at, side.rst_after_bytes = at, side.bytes_sent
            side.rst_position = connection.packets
        return
    if segment.window == 0:
        side.zero_windows += 1
        if side.first_zero_window_at is None:
            side.first_zero_window_at = at
    if segment.payload:
        start = side.offset(segment.seq)
        end = start + segment.payload
        if end <= side._high:
            side.retransmitted_segments += 1
            side.retransmitted_bytes += segment.payload
        else:
            side.bytes_sent += end - max(start, side._high)
            side._high = end
        _track_exchange(connection, segment, side)
    elif side is connection.client_side and segment.has(ACK) and connection.exchanges:
        connection.exchanges[-1].client_acks.append(segment.time)
    if segment.has(FIN) and side.fin_at is None:
        side.fin_at, side.fin_after_bytes = at, side.bytes_sent
        side.fin_position = connection.packets


def _track_exchange(connection: ConnectionFacts, segment: Segment, side: SideFacts) -> None:
    exchanges = connection.exchanges
    if side is connection.client_side:
        if not exchanges or exchanges[-1].reply_times:
            exchanges.append(Exchange(request_end=segment.time))
        else:
            exchanges[-1].request_end = segment.time  # the request continues
    elif exchanges:
        exchanges[-1].reply_times.append(segment.time)
        exchanges[-1].reply_sizes.append(segment.payload)


# -- words -------------------------------------------------------------------------


class EndTracker:
    """Whether every connection seen so far has ended, fed incrementally.

    Only SYN, FIN and RST segments matter, so a caller may feed just those.
    """

    def __init__(self, server_port: int) -> None:
        self.server_port = server_port
        self._fins: dict[tuple[Endpoint, Endpoint], set[Endpoint]] = {}
        self._reset: set[tuple[Endpoint, Endpoint]] = set()

    def feed(self, segment: Segment) -> None:
        if segment.dst.port == self.server_port:
            pair = (segment.src, segment.dst)
        elif segment.src.port == self.server_port:
            pair = (segment.dst, segment.src)
        else:
            return
        if segment.has(SYN) and not segment.has(ACK):
            self._fins[pair] = set()
            self._reset.discard(pair)
        fins = self._fins.get(pair)
        if fins is None:
            return  # opened before the capture: its end is not this scenario's business
        if segment.has(RST):
            self._reset.add(pair)
        elif segment.has(FIN):
            fins.add(segment.src)

    def all_ended(self) -> bool:
        return all(pair in self._reset or len(fins) == 2 for pair, fins in self._fins.items())
