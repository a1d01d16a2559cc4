"""What an RFC 862 echo server owes its client, without any I/O.

Every byte received is owed back, unchanged and in order, before anything
received later; chunk boundaries carry no meaning. When the client half-closes
(``recv`` returns 0, i.e. its FIN arrived) the server owes, once everything
received has been sent back, its own FIN (``shutdown(SHUT_WR)``) -- never an
RST, which would let the kernel discard echoed bytes the client has not read
yet.

The server wrapper holds at most one receive buffer per connection and sends
it back completely before reading again: the client's reading speed throttles
its sending speed (backpressure), so memory per connection stays bounded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# One receive buffer per connection; the echo of a buffer completes before the
# next recv, so this is the whole per-connection memory of an echo server.
ECHO_BUFFER_BYTES = 64 * 1024


@dataclass(frozen=True)
class EchoBack:
    """Send ``size`` bytes just received back before receiving again."""

    size: int


@dataclass(frozen=True)
class FinishWithFin:
    """The peer sent its FIN and all its bytes were echoed: shut down writing, then close."""


EchoAction = EchoBack | FinishWithFin


def echo_until_fin(recv_into: Callable[[bytearray], int],
                   send_all: Callable[[memoryview], object], buffer: bytearray) -> int:
    """Run the exchange over the caller's I/O primitives until the peer's FIN; return the
    bytes echoed. The caller then owes its FIN.

    Each chunk goes back whole before the next ``recv_into``: backpressure, and the
    memory stays ``buffer``. The same rules as EchoSession, as one loop: a
    per-chunk call (and its action object) costs about 8 % of a pinned loopback
    round trip, which a reference server's latency should not carry.
    """
    echoed = 0
    with memoryview(buffer) as view:
        while size := recv_into(buffer):
            send_all(view[:size])
            echoed += size
    return echoed


class EchoSession:
    """Step by step, for servers that interleave their own decisions (the adversary,
    the faulty fixtures): tracks one echo connection: what is owed and how much has flowed."""

    def __init__(self) -> None:
        self.bytes_echoed = 0
        self.peer_finished = False

    def received(self, size: int) -> EchoAction:
        """Decide what is owed after ``recv`` returned ``size`` bytes (0 is EOF)."""
        if self.peer_finished:
            raise ValueError("data after the peer's FIN: a stream cannot reopen")
        if size < 0:
            raise ValueError(f"negative byte count {size}")
        if size == 0:
            self.peer_finished = True
            return FinishWithFin()
        self.bytes_echoed += size
        return EchoBack(size)
