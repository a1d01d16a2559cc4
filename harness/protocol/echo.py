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


class EchoSession:
    """Tracks one echo connection: what is owed and how much has flowed."""

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
