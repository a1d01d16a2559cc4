"""Bulk throughput: an echo both ways at once, or an HTTP download, hashed with xxh3.

Echo: a sender thread writes ``total_bytes`` of a fixed pseudo-random block
(repeated) while this thread reads the echo with recv_into into one reused
1 MiB buffer, hashing it (xxh3_64 costs ~1/80 of a loopback transfer; see
shared/bench/RESULTS.md §3). The client reads exactly ``total_bytes`` and
never half-closes, so a server's close-time behaviour (FIN, RST, drain) cannot
spoil the measurement: that is graceful-close's business. Throughput counts
the payload once, as iperf3 does, although it crossed the loopback twice.

HTTP: the reference client's ``fetch`` (GET, streamed, hashed body).
Rates are reported in bytes/s; ``gbit_per_s`` (the results JSON's
throughput_gbps) and ``gbyte_per_s`` (1 GB = 10^9 bytes) derive from it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from sockspec.measure.plan import ImpossibleLoad, check_positive
from sockspec.measure.sockets import open_stream, resolve_destination, set_io_timeouts
from sockspec.preparing import preparing
from sockspec.reference.client_streams import (
    BackgroundSender,
    BodyCollector,
    InactivityClock,
    collect_until_end,
)
from sockspec.reference.http_fetch import fetch
from sockspec.reference.stream_digest import StreamDigest
from sockspec.transport import Address, StreamEnd, send_all

BLOCK_BYTES = 1024 * 1024
PATTERN_SEED = 0x50C5  # fixed: the same bytes every run, so digests are comparable


def pattern_block(size: int = BLOCK_BYTES, seed: int = PATTERN_SEED) -> bytes:
    """Pseudo-random bytes without NUL (NUL handling is binary-integrity's to judge)."""
    raw = random.Random(seed).randbytes(size)
    return raw.translate(bytes([1]) + bytes(range(1, 256)))


def stream_digest(block: bytes, total: int, algorithm: str = "xxh3") -> str:
    """Digest of ``total`` bytes made of ``block`` repeated (and cut)."""
    digest = StreamDigest(algorithm)
    view = memoryview(block)
    done = 0
    while done < total:
        piece = view[:min(len(block), total - done)]
        digest.update(piece)
        done += len(piece)
    return digest.hexdigest()


@dataclass(frozen=True)
class ThroughputRequest:
    total_bytes: int = 64 * 1024 * 1024
    timeout_s: float = 10.0          # bound on each wait for progress
    deadline_s: float = 120.0        # bound on the whole transfer
    verify: bool = True              # hash what came back and compare

    def validate(self) -> None:
        if self.total_bytes < 1:
            raise ImpossibleLoad(f"transfer size must be at least 1 byte, not {self.total_bytes}")
        check_positive("timeout (seconds)", self.timeout_s)
        check_positive("deadline (seconds)", self.deadline_s)


@dataclass
class ThroughputResult:
    expected_bytes: int
    received_bytes: int
    elapsed_s: float
    expected_digest: str | None
    received_digest: str | None
    end: StreamEnd                   # LIMIT: all expected bytes read; else FIN/RST/TIMEOUT
    send_error: str | None = None
    first_bytes: bytes = b""
    last_bytes: bytes = b""

    @property
    def bytes_per_s(self) -> float:
        return self.received_bytes / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def gbit_per_s(self) -> float:
        return self.bytes_per_s * 8 / 1e9

    @property
    def gbyte_per_s(self) -> float:
        return self.bytes_per_s / 1e9

    @property
    def complete(self) -> bool:
        return self.received_bytes == self.expected_bytes and self.send_error is None

    @property
    def verified(self) -> bool:
        return self.complete and self.expected_digest == self.received_digest

    def describe(self) -> str:
        text = (f"received {self.received_bytes} of {self.expected_bytes} bytes in "
                f"{self.elapsed_s:.3f} s ({self.gbyte_per_s:.2f} GB/s), stream end "
                f"{self.end.value}")
        if self.expected_digest != self.received_digest:
            text += f", digest {self.received_digest} != expected {self.expected_digest}"
        if self.send_error:
            text += f", send error: {self.send_error}"
        return text


class _NoDigest:
    name = "none"

    def update(self, data: object) -> None:
        pass

    def hexdigest(self) -> None:
        return None


def run_echo_throughput(address: str | Address, request: ThroughputRequest) -> ThroughputResult:
    """Send ``total_bytes`` through an echo server while reading them back."""
    request.validate()
    target = resolve_destination(address)
    block = pattern_block()
    expected = stream_digest(block, request.total_bytes) if request.verify else None
    collector = BodyCollector(request.total_bytes,
                              StreamDigest("xxh3") if request.verify else _NoDigest())
    sock = open_stream(target)
    started = time.perf_counter()
    try:
        set_io_timeouts(sock, request.timeout_s)
        sock.connect(target.sockaddr)

        def send_payload() -> None:
            view, left = memoryview(block), request.total_bytes
            while left > 0:
                left -= send_all(sock, view[:min(len(block), left)])

        sender = BackgroundSender(sock, send_payload, half_close_after=False)
        try:
            end = collect_until_end(sock, collector,
                                    InactivityClock(request.timeout_s, request.deadline_s,
                                                    started))
        finally:
            sender.finish(request.timeout_s)
    finally:
        sock.close()
    return ThroughputResult(request.total_bytes, collector.length,
                            time.perf_counter() - started, expected,
                            collector.digest.hexdigest(), end, sender.error,
                            bytes(collector.evidence.first), bytes(collector.evidence.last))


def run_download_throughput(address: str | Address, path: str, *, size: int, digest: str,
                            timeout_s: float = 10.0, deadline_s: float = 120.0
                            ) -> ThroughputResult:
    """GET ``path`` (HTTP/1.0) and hash the body; ``size``/``digest`` are the file's."""
    target = resolve_destination(address)
    started = time.perf_counter()
    response = fetch(target, path, timeout=timeout_s, deadline_s=deadline_s,
                     await_close=False)
    elapsed = time.perf_counter() - started
    status_error = None if response.status == 200 else f"HTTP status {response.status}"
    return ThroughputResult(size, response.body_length, elapsed, digest, response.digest,
                            response.end, status_error, response.body_first_bytes,
                            response.body_last_bytes)


def write_pattern_file(path, size: int) -> str:
    """Write ``size`` pattern bytes to ``path``; return their digest."""
    block = pattern_block()
    with preparing(f"write the pattern file {path}"), open(path, "wb") as out:
        left = size
        while left > 0:
            left -= out.write(block[:min(len(block), left)])
    return stream_digest(block, size)
