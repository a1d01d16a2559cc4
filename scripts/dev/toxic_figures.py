"""What each toxic imposes, measured through a real relay over loopback TCP: the figures
of BENCHMARKS.md ("Toxics"). tests/test_toxics.py checks the same toxics with bounds
only; timings belong here, not in a timed test.

    .venv/bin/python scripts/dev/toxic_figures.py

Uses the one-connection programs and the relay helpers of tests/test_toxics.py.
"""

from __future__ import annotations

import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from test_toxics import dial, echo, first_sends, program, read_all, relayed  # noqa: E402

from sockspec.packets.capture import PacketCapture  # noqa: E402

ROUNDS = 50


def round_trips(spec: str) -> list[float]:
    """ROUNDS one-byte round trips through ``spec``, in ms."""
    times = []
    with program("tcp", echo) as (address, _), relayed(address, spec) as relay:
        with dial(relay.address) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(ROUNDS):
                started = time.perf_counter()
                sock.sendall(b"x")
                sock.recv(1)
                times.append((time.perf_counter() - started) * 1000)
    return times


def transfer_rate(spec: str, size: int) -> float:
    """Bytes per second of ``size`` bytes sent through ``spec`` to a reader."""
    with program("tcp", lambda s: {"got": read_all(s), "at": time.perf_counter()}) \
            as (address, seen), relayed(address, spec) as relay:
        with dial(relay.address) as sock:
            started = time.perf_counter()
            sock.sendall(bytes(size))
            sock.shutdown(socket.SHUT_WR)
            read_all(sock)
    assert len(seen["got"][0]) == size
    return size / (seen["at"] - started)


def segments(spec: str, size: int) -> tuple[list[int], list[float]]:
    """Payload sizes of the segments the program received, and the gaps between them (ms)."""
    with program("tcp", lambda s: {"got": read_all(s)}) as (address, _), \
            PacketCapture("lo", address.port) as capture, relayed(address, spec) as relay:
        with dial(relay.address) as sock:
            sock.sendall(bytes(size))
            sock.shutdown(socket.SHUT_WR)
            read_all(sock)
        found = first_sends(capture.stop().segments(), address.port)
    gaps = [(b.time - a.time) * 1000 for a, b in zip(found, found[1:], strict=False)]
    return [s.payload for s in found], gaps


def fin_delay(spec: str) -> float:
    """ms between the data and the FIN at the program, the client sending both at once."""
    def program_side(sock):
        sock.recv(100)
        got = time.perf_counter()
        sock.recv(100)
        return {"delay": (time.perf_counter() - got) * 1000}

    with program("tcp", program_side) as (address, seen), relayed(address, spec) as relay:
        with dial(relay.address) as sock:
            sock.sendall(b"bye")
            sock.shutdown(socket.SHUT_WR)
            read_all(sock)
    return seen["delay"]


def bytes_before_end(spec: str, sent: int) -> tuple[int, str]:
    with program("tcp", lambda s: {"got": read_all(s)}) as (address, seen), \
            relayed(address, spec) as relay:
        with dial(relay.address) as sock:
            sock.sendall(bytes(sent))
            read_all(sock)
    data, end = seen["got"]
    return len(data), end


def reset_time(spec: str) -> float:
    with program("tcp", lambda s: {"got": read_all(s)}) as (address, _), \
            relayed(address, spec) as relay:
        with dial(relay.address) as sock:
            started = time.perf_counter()
            read_all(sock)
            return (time.perf_counter() - started) * 1000


def quartiles(values: list[float]) -> str:
    q = statistics.quantiles(values, n=4)
    return f"median {q[1]:.2f}, p25 {q[0]:.2f}, p75 {q[2]:.2f}, min {min(values):.2f}, " \
           f"max {max(values):.2f}"


def main() -> None:
    base = statistics.median(round_trips("latency:ms=0"))
    print(f"relay alone (latency:ms=0): round trip median {base:.3f} ms")
    for spec in ("latency:ms=50", "latency:ms=50,jitter=10", "latency:ms=20,direction=to"):
        print(f"{spec}: round trip ms {quartiles(round_trips(spec))}")
    for rate, size in ((100_000, 300_000), (1_000_000, 3_000_000), (10_000_000, 10_000_000)):
        measured = transfer_rate(f"bandwidth:rate={rate},direction=to", size)
        print(f"bandwidth:rate={rate}: {measured:,.0f} B/s ({measured / rate:.3f} of the setting)")
    for spec, size in (("slicer", 500), ("slicer:size=100,var=50,delay_us=500", 20_000)):
        sizes, gaps = segments(spec, size)
        print(f"{spec} ({size} B): {len(sizes)} segments, sizes {min(sizes)}-{max(sizes)} "
              f"(mean {statistics.mean(sizes):.1f}); gap ms {quartiles(gaps)}")
    print(f"slow_close:ms=200: FIN after the data by {fin_delay('slow_close:ms=200'):.1f} ms")
    for spec in ("limit_data:bytes=1000,direction=to", "reset:at=1000,direction=to"):
        count, end = bytes_before_end(spec, 5000)
        print(f"{spec}: the program got {count} of 5000 bytes, then {end}")
    print(f"reset:ms=100: RST after {reset_time('reset:ms=100'):.1f} ms")


if __name__ == "__main__":
    main()
