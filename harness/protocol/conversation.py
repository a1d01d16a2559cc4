"""Running a declared protocol's exchanges over a socket (both roles' building block).

``Conversation`` renders an exchange's request (templates, the connection's
counter ``{n}``, captured variables, the family's ``{payload}``), frames it, sends
it, reads the reply frame by frame and judges it against the declaration:
``Outcome.problem`` is None when the reply is right, else one line saying what
differs. Scenarios that send in their own way (in pieces, with the FIN) use
``render`` and ``receive`` around their own sending.
"""

from __future__ import annotations

import random
import socket
import time
from dataclasses import dataclass, field

from sockspec.errors import PeerError
from sockspec.protocol.declared import Exchange, Framing, Protocol, Sequence, random_bytes
from sockspec.transport import RECV_CHUNK, StreamEnd, describe_os_error, send_all

# Bytes of the ``{payload}`` an exchange gets when no family chose one.
DEFAULT_PAYLOAD = 16


class FrameReader:
    """Frames of ``framing`` from a socket, keeping what arrived past the last one."""

    def __init__(self, sock: socket.socket, framing: Framing) -> None:
        self.sock = sock
        self.framing = framing
        self.buffer = bytearray()
        self.end: StreamEnd | None = None
        self.received = 0
        self.searched = 0   # bytes of ``buffer`` already searched for a delimiter

    def frame(self, timeout: float) -> bytes:
        """The next frame's payload; PeerError saying how the stream ended, or that the
        frame broke the framing, or that nothing complete came within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = self.framing.decode(self.buffer, at_end=self.end is StreamEnd.FIN,
                                            searched=self.searched)
            except ValueError as exc:
                raise PeerError(f"the reply breaks the framing ({self.framing.describe()}): "
                                f"{exc}") from None
            if found is not None:
                payload, used = found
                del self.buffer[:used]
                self.searched = 0
                return payload
            self.searched = len(self.buffer)
            if self.end is not None:
                raise PeerError(self._ended())
            left = deadline - time.monotonic()
            if left <= 0:
                self.end = StreamEnd.TIMEOUT
                raise PeerError(self._ended(timeout))
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(RECV_CHUNK)
            except TimeoutError:
                self.end = StreamEnd.TIMEOUT
                raise PeerError(self._ended(timeout)) from None
            except (ConnectionResetError, BrokenPipeError):
                self.end = StreamEnd.RST
                continue
            except OSError as exc:
                raise PeerError(f"receive failed: {describe_os_error(exc)}") from None
            if not chunk:
                self.end = StreamEnd.FIN
                continue
            self.received += len(chunk)
            self.buffer += chunk

    def _ended(self, timeout: float = 0.0) -> str:
        partial = f" ({len(self.buffer)} bytes of an incomplete frame)" if self.buffer else ""
        if self.end is StreamEnd.TIMEOUT:
            return f"no complete reply frame within {timeout:g} s{partial}"
        return f"the stream ended with {self.end.value} before a complete reply frame{partial}"


@dataclass
class Outcome:
    """One exchange as it went: what was sent, what came back, what is wrong."""

    exchange: Exchange
    sent: bytes = b""                      # the request payload
    wire: bytes = b""                      # the request as framed on the wire
    frames: list[bytes] = field(default_factory=list)
    problem: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.problem is None

    def facts(self) -> dict[str, object]:
        reply = b"".join(self.frames)
        return {
            "exchange": self.exchange.name,
            "request": _preview(self.sent),
            "reply": _preview(reply) if self.frames else "none",
            "expected": self.exchange.expect.describe(),
        }


def _preview(data: bytes, width: int = 64) -> str:
    shown = repr(data[:width])
    return shown + (f"... ({len(data)} bytes)" if len(data) > width else "")


class Conversation:
    """A client's side of a declared protocol on one connection."""

    def __init__(self, protocol: Protocol, sock: socket.socket, *, timeout: float,
                 rng: random.Random | None = None, values: dict[str, bytes] | None = None) -> None:
        self.protocol = protocol
        self.sock = sock
        self.timeout = timeout
        self.rng = rng or random.Random(0)
        self.values: dict[str, bytes] = dict(values or {})
        self.count = 0
        self.reader = FrameReader(sock, protocol.framing) if sock is not None else None
        self.current: dict[str, bytes] = {}   # the values of the last request rendered

    def render(self, exchange: Exchange, extra: dict[str, bytes] | None = None) -> tuple[bytes, bytes]:
        """The request's payload and its framed wire bytes; counts the exchange.

        Without a ``payload`` in ``extra``, ``{payload}`` is 16 letters and digits (any
        protocol's text carries them), the same for the rest of the connection."""
        self.count += 1
        if "payload" not in self.values:
            self.values["payload"] = random_bytes(self.rng, DEFAULT_PAYLOAD, alphabet="text")
        values = {"n": str(self.count).encode(), **self.values, **(extra or {})}
        values.setdefault("size", str(len(values["payload"])).encode())
        self.current = values
        payload = exchange.send.render(values, self.rng, self.protocol.framing.forbidden())
        return payload, self.protocol.framing.encode(payload)

    def receive(self, exchange: Exchange, sent: bytes, wire: bytes = b"",
                extra: dict[str, bytes] | None = None, started: float | None = None) -> Outcome:
        """Read the reply to ``exchange`` and judge it; captures go into ``values``."""
        outcome = Outcome(exchange, sent=sent, wire=wire)
        values = {**self.current, **(extra or {})}
        started = time.monotonic() if started is None else started
        try:
            for _ in range(exchange.expect.count):
                outcome.frames.append(self.reader.frame(self.timeout))
        except PeerError as exc:
            outcome.problem = str(exc)
        else:
            outcome.problem = exchange.expect.check(outcome.frames, values, sent)
        outcome.seconds = time.monotonic() - started
        if outcome.problem is None and exchange.capture is not None:
            taken = exchange.capture.take(outcome.frames[0])
            if taken is None:
                outcome.problem = (f"capture {exchange.capture.name!r}: the reply "
                                   f"{_preview(outcome.frames[0])} does not match "
                                   f"/{exchange.capture.pattern.pattern.decode(errors='replace')}/")
            else:
                self.values[exchange.capture.name] = taken
        return outcome

    def run(self, exchange: Exchange, extra: dict[str, bytes] | None = None) -> Outcome:
        """Send the request whole and judge the reply."""
        sent, wire = self.render(exchange, extra)
        started = time.monotonic()
        try:
            send_all(self.sock, wire)
        except PeerError as exc:
            return Outcome(exchange, sent=sent, wire=wire, problem=str(exc))
        return self.receive(exchange, sent, wire, extra, started)

    def run_all(self, exchanges: tuple[Exchange, ...] | list[Exchange],
                extra: dict[str, bytes] | None = None) -> list[Outcome]:
        """Each exchange in order, stopping at the first wrong one (the last outcome)."""
        outcomes = []
        for exchange in exchanges:
            outcomes.append(self.run(exchange, extra))
            if not outcomes[-1].ok:
                break
        return outcomes


def sequence_values(protocol: Protocol, sequence: Sequence, rng: random.Random,
                    size: int | None = None) -> dict[str, bytes]:
    """``{payload}`` and ``{size}`` for a binary or large-reply sequence."""
    size = sequence.size if size is None else size
    forbidden = protocol.framing.forbidden() if sequence.alphabet != "all" else b""
    payload = random_bytes(rng, size, forbidden, sequence.alphabet)
    return {"payload": payload, "size": str(size).encode()}


def first_request(protocol: Protocol) -> bytes:
    """The wire bytes of the declaration's first exchange (a liveness probe's request)."""
    return Conversation(protocol, None, timeout=1.0).render(protocol.exchanges[0])[1]


def first_exchange(protocol: Protocol, address, timeout: float) -> tuple[bool, str]:
    """Run the declaration's first exchange on a fresh connection: (ok, one line)."""
    from sockspec.transport import connect

    with connect(address, timeout, nodelay=True) as sock:
        outcome = Conversation(protocol, sock, timeout=timeout).run(protocol.exchanges[0])
    if outcome.ok:
        return True, f"exchange {outcome.exchange.name!r} answered as declared"
    return False, f"exchange {outcome.exchange.name!r}: {outcome.problem}"
