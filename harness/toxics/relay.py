"""The relay: a user-space proxy between the harness and the program under test that
applies a toxic profile to every connection through it.

One thread accepts; each connection gets one thread that owns both of its sockets
(so a reset never races a read on another thread) and runs a small select loop:
bytes read from one side wait in that direction's queue until due (latency), are
cut at their byte allowance (limit_data, blackhole, reset at=) and leave paced
(bandwidth, slicer: TCP_NODELAY, one send per segment). A FIN read is forwarded
as a FIN once the queue before it has left (slow_close holds it back); a reset
read (or a failed send) resets the other side too (SO_LINGER {1, 0}, then close).

Directions are the program's: "to" the program under test, "from" it. For a
server under test the harness connects to the relay and the relay to the server;
for a client under test the client connects to the relay and the relay to the
harness's server.
"""

from __future__ import annotations

import collections
import errno
import random
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from sockspec.toxics.spec import Toxic, ToxicProfile, connection_random
from sockspec.transport import Address, TcpAddress, UnixAddress, open_socket

RECV_BYTES = 64 * 1024
QUEUE_CAP_BYTES = 1024 * 1024    # a direction stops reading beyond this (backpressure)
CONNECT_TIMEOUT_S = 5.0
JOIN_TIMEOUT_S = 5.0
LISTEN_BACKLOG = 1024
BANDWIDTH_TICK_S = 0.01          # bandwidth sends rate * this many bytes at a time
DESCRIBED_CONNECTIONS = 8        # connections the evidence lists one by one


class _Reset(Exception):
    """A side reset (or the toxic resets): reset the connection on both sides."""


class Flow:
    """One direction of one connection: read ``src``, write ``dst``."""

    def __init__(self, src: socket.socket, dst: socket.socket, direction: str,
                 toxics: list[Toxic], rng: random.Random, started: float,
                 events: list[str]) -> None:
        self.src, self.dst, self.direction, self.rng = src, dst, direction, rng
        mine = {t.kind: t for t in toxics if t.acts_on(direction)}
        self.toxics = mine
        self.queue: collections.deque[list] = collections.deque()  # [due, bytearray]
        self.queued = 0
        self.last_due = started
        self.next_send = started
        self.segment_left = 0
        self.forwarded = 0          # bytes read and let through (before the cut)
        self.sent = 0
        self.src_eof = False
        self.eof_due: float | None = None
        self.done = False           # FIN forwarded, or nothing will ever be forwarded
        self.blocked = False        # the last send met a full socket buffer
        self.after_cut: str | None = None   # "limit", "reset", "blackhole" once reached
        self.events = events
        # The first byte offset at which a toxic of this direction cuts the stream.
        self.cut: tuple[int, str] | None = min(self._cuts(), default=None)

    # -- reading ----------------------------------------------------------------------

    def wants_read(self) -> bool:
        return not self.src_eof and self.queued < QUEUE_CAP_BYTES

    def read(self, now: float) -> None:
        try:
            data = self.src.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            raise _Reset(f"{self.direction}: the sender reset "
                         f"({errno.errorcode.get(exc.errno, exc)})") from None
        if not data:
            self.src_eof = True
            slow = self.toxics.get("slow_close")
            self.eof_due = now + (slow.get("ms") / 1000 if slow else 0.0)
            if self.after_cut != "blackhole":
                self.events.append(f"{self.direction}: FIN after {self.forwarded} bytes")
            return
        if self.done:
            return  # the connection is closing (limit_data): read to its FIN and drop
        if self.cut is not None:
            offset, what = self.cut
            room = offset - self.forwarded
            if len(data) >= room and self.after_cut is None:
                self.after_cut = what
                self.events.append(f"{self.direction}: {what} at byte {offset}")
            data = data[:max(room, 0)]
        if not data:
            return
        self.forwarded += len(data)
        latency = self.toxics.get("latency")
        delay = 0.0
        if latency is not None:
            jitter = latency.get("jitter")
            delay = max(0.0, latency.get("ms") + (self.rng.uniform(-jitter, jitter)
                                                  if jitter else 0.0)) / 1000
        due = max(now + delay, self.last_due)   # order kept whatever the jitter
        self.last_due = due
        self.queue.append([due, bytearray(data)])
        self.queued += len(data)

    def _cuts(self) -> Iterator[tuple[int, str]]:
        for t in self.toxics.values():
            if t.kind == "limit_data":
                yield t.get("bytes"), "limit"
            elif t.kind == "blackhole":
                yield t.get("after"), "blackhole"
            elif t.kind == "reset" and t.get("at") >= 0:
                yield t.get("at"), "reset"

    # -- writing ----------------------------------------------------------------------

    def pump(self, now: float) -> str | None:
        """Send what is due; "limit" or "reset" once this direction's cut has all left."""
        while self.queue and not self.done:
            due, data = self.queue[0]
            if due > now or self.next_send > now:
                return None
            piece = self._piece(len(data))
            try:
                n = self.dst.send(data[:piece])
            except (BlockingIOError, InterruptedError):
                self.blocked = True
                return None
            except OSError as exc:
                raise _Reset(f"{self.direction}: the receiver reset "
                             f"({errno.errorcode.get(exc.errno, exc)})") from None
            self.blocked = False
            self._paced(n, now)
            del data[:n]
            self.queued -= n
            self.sent += n
            if not data:
                self.queue.popleft()
        if self.queue:
            return None
        if self.after_cut in ("limit", "reset"):
            return self.after_cut
        if self.src_eof and not self.done and self.after_cut != "blackhole" \
                and self.eof_due is not None and self.eof_due <= now:
            self.done = True
            try:
                self.dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        return None

    def _piece(self, available: int) -> int:
        slicer, bandwidth = self.toxics.get("slicer"), self.toxics.get("bandwidth")
        if slicer is not None:
            if self.segment_left == 0:
                size, var = slicer.get("size"), slicer.get("var")
                self.segment_left = size + (self.rng.randint(-var, var) if var else 0)
            return min(available, self.segment_left)
        if bandwidth is not None:
            return min(available, max(1, int(bandwidth.get("rate") * BANDWIDTH_TICK_S)))
        return available

    def _paced(self, n: int, now: float) -> None:
        slicer, bandwidth = self.toxics.get("slicer"), self.toxics.get("bandwidth")
        if slicer is not None:
            self.segment_left -= n
            if self.segment_left == 0:
                self.next_send = now + slicer.get("delay_us") / 1e6
        if bandwidth is not None:
            # Late by up to a tick (the loop woke late): caught up, the average kept.
            self.next_send = max(self.next_send, now - BANDWIDTH_TICK_S) + n / bandwidth.get("rate")

    def wants_write(self) -> bool:
        return self.blocked and bool(self.queue)

    def next_event(self, now: float) -> float | None:
        """When pump() has something to do without any socket event (None: nothing)."""
        if self.blocked or self.done:
            return None
        if self.queue:
            return max(self.queue[0][0], self.next_send)
        if self.src_eof and self.after_cut != "blackhole" and self.eof_due is not None:
            return self.eof_due
        return None


@dataclass
class Link:
    """One connection through the relay and what its toxics did."""

    number: int
    active: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def describe(self) -> str:
        toxics = ", ".join(self.active) or "none acted (p)"
        events = "; ".join(self.events)
        return f"connection {self.number}: {toxics}" + (f"; {events}" if events else "")


class Relay:
    """Listens on its own address, forwards each connection to ``upstream`` through the
    toxics of ``profile``; ``program_upstream`` says which side is the program under
    test (True: a server under test; False: a client under test connects to us)."""

    def __init__(self, listen: Address, upstream: Address, profile: ToxicProfile, *,
                 seed: int, key: str, program_upstream: bool) -> None:
        self.listen_address = listen
        self.upstream = upstream
        self.profile = profile
        self.seed, self.key = seed, key
        self.program_upstream = program_upstream
        self.links: list[Link] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._wake_read, self._wake_write = socket.socketpair()
        self._accepting: threading.Thread | None = None

    @property
    def address(self) -> Address:
        return self.listen_address

    def start(self) -> Relay:
        listener = open_socket(self.listen_address)
        try:
            if isinstance(self.listen_address, TcpAddress):
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(self.listen_address.sockaddr)
            listener.listen(LISTEN_BACKLOG)
        except BaseException:
            listener.close()
            self._wake_read.close()
            self._wake_write.close()
            raise
        self._listener = listener
        self._accepting = threading.Thread(target=self._accept_loop, daemon=True,
                                           name=f"toxics-{self.listen_address}")
        self._accepting.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close every connection still open, wait for the threads."""
        try:
            self._wake_write.send(b"x")   # never read: every loop sees it readable
        except OSError:
            pass
        if self._accepting is not None:
            self._accepting.join(JOIN_TIMEOUT_S)
        for thread in list(self._threads):
            thread.join(JOIN_TIMEOUT_S)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._wake_read.close()
        self._wake_write.close()

    def describe(self) -> list[str]:
        """Evidence lines: the profile and what it did on each connection."""
        with self._lock:
            links = list(self.links)
        head = (f"toxics: {self.profile.spec} (seed {self.seed}), relay {self.listen_address} "
                f"-> {self.upstream}, {len(links)} connection{'s' if len(links) != 1 else ''}")
        lines = [head, *(f"  {link.describe()}" for link in links[:DESCRIBED_CONNECTIONS])]
        if len(links) > DESCRIBED_CONNECTIONS:
            lines.append(f"  ... and {len(links) - DESCRIBED_CONNECTIONS} more")
        return lines

    # -- threads ------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while True:
            ready = _wait([self._listener, self._wake_read], [], None)
            if self._wake_read in ready:
                return
            try:
                sock, _ = self._listener.accept()
            except OSError:
                continue
            with self._lock:
                link = Link(len(self.links) + 1)
                self.links.append(link)
                thread = threading.Thread(target=self._serve, args=(sock, link), daemon=True,
                                          name=f"toxics-link-{link.number}")
                self._threads.append(thread)
            thread.start()

    def _serve(self, accepted: socket.socket, link: Link) -> None:
        rng = connection_random(self.seed, self.key, link.number)
        active = [t for t in self.profile.toxics if rng.random() < t.p]
        link.active = [t.label for t in active]
        try:
            upstream = _connect(self.upstream)
        except OSError as exc:
            link.events.append(f"connect to {self.upstream} failed: {exc.strerror or exc}; "
                               "reset the accepted side")
            _reset(accepted)
            return
        started = time.monotonic()
        to_dir, from_dir = ("to", "from") if self.program_upstream else ("from", "to")
        flows = [Flow(src, dst, direction, active,
                      connection_random(self.seed, self.key, link.number, direction), started,
                      link.events)
                 for src, dst, direction in ((accepted, upstream, to_dir),
                                             (upstream, accepted, from_dir))]
        for sock in (accepted, upstream):
            sock.setblocking(False)
            if sock.family != socket.AF_UNIX and any(f.toxics.get("slicer") for f in flows):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reset_at = min((started + t.get("ms") / 1000 for t in active
                        if t.kind == "reset" and t.get("ms") >= 0), default=None)
        try:
            how = self._loop(flows, reset_at)
        except _Reset as why:
            how = f"reset: {why}"
        if how.startswith("reset"):
            link.events.append(how)
            _reset(accepted)
            _reset(upstream)
        else:
            if how != "ended":
                link.events.append(how)
            accepted.close()
            upstream.close()

    def _loop(self, flows: list[Flow], reset_at: float | None) -> str:
        closing = False   # limit_data reached: both ends shut, draining to their FIN
        while True:
            now = time.monotonic()
            if reset_at is not None and now >= reset_at:
                return "reset: its time came"
            for flow in flows:
                cut = flow.pump(now)
                if cut == "reset":
                    return "reset: its byte offset came"
                if cut == "limit" and not closing:
                    closing = True
                    for other in flows:
                        other.done = True
                        other.queue.clear()
                        other.queued = 0
                        _shut(other.dst)
            if all(f.done and f.src_eof for f in flows):
                return "limit reached, both ends closed" if closing else "ended"
            readers = [f.src for f in flows if f.wants_read()]
            writers = [f.dst for f in flows if f.wants_write()]
            times = [t for f in flows if (t := f.next_event(now)) is not None]
            times += [reset_at] if reset_at is not None else []
            timeout = max(0.0, min(times) - now) if times else None
            ready = _wait([*readers, self._wake_read], writers, timeout)
            if self._wake_read in ready:
                return "closed when the relay stopped"
            for flow in flows:
                if ready.get(flow.src, 0) & _READABLE and flow.wants_read():
                    flow.read(time.monotonic())
                if ready.get(flow.dst, 0) & _WRITABLE:
                    flow.blocked = False


_READABLE = select.POLLIN | select.POLLHUP | select.POLLERR
_WRITABLE = select.POLLOUT | select.POLLHUP | select.POLLERR


def _wait(readers: list[socket.socket], writers: list[socket.socket],
          timeout: float | None) -> dict[socket.socket, int]:
    """poll() (select() stops at descriptor 1024): the sockets ready, with their events."""
    masks: dict[socket.socket, int] = {}
    for sock in readers:
        masks[sock] = masks.get(sock, 0) | select.POLLIN
    for sock in writers:
        masks[sock] = masks.get(sock, 0) | select.POLLOUT
    poller = select.poll()
    by_fd = {}
    for sock, mask in masks.items():
        poller.register(sock, mask)
        by_fd[sock.fileno()] = sock
    found = poller.poll(None if timeout is None else timeout * 1000)
    return {by_fd[fd]: events for fd, events in found}


def _connect(address: Address) -> socket.socket:
    sock = open_socket(address)
    try:
        sock.settimeout(CONNECT_TIMEOUT_S)
        sock.connect(address.sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER {1, 0}: a TCP peer gets a RST (a Unix peer: ECONNRESET on
    a read when data was left unread, else end of stream)."""
    try:
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def relay_address(upstream: Address, directory: str, port: int) -> Address:
    """The relay's own address beside ``upstream``: the same loopback host on ``port``, or
    a socket in ``directory``."""
    if isinstance(upstream, UnixAddress):
        return UnixAddress(f"{directory}/relay.sock")
    return TcpAddress(upstream.host, port)
