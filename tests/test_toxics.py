"""Toxics (sockspec.toxics): each toxic measured against its setting through a real relay.

Byte counts and segment sizes are exact. Delays and rates are judged only from below,
where the relay guarantees them (it never sends a byte before its time), with generous
upper bounds that catch a hang; the measured figures are in BENCHMARKS.md
(scripts/dev/toxic_figures.py), not here.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import tempfile
import threading
import time
from contextlib import contextmanager

import pytest

from sockspec.errors import TargetConfigError, UsageError
from sockspec.packets.capture import PacketCapture, capture_unavailable_reason
from sockspec.toxics.applies import skip_reason
from sockspec.toxics.relay import Relay, relay_address
from sockspec.toxics.spec import (
    STANDARD_PROFILES,
    connection_random,
    parse_profile,
    profiles_of_options,
    profiles_of_tables,
)
from sockspec.transport import TcpAddress, UnixAddress
from sockspec.under_test.ports import PortAllocator

WAIT_S = 5.0          # any single wait: catches a hang, never a goal
HOSTS = {"tcp": "127.0.0.1", "tcp6": "::1"}


@contextmanager
def program(transport: str, handler):
    """A one-connection "program under test" running ``handler(sock)`` in a thread."""
    tmp = tempfile.mkdtemp(prefix="sockspec-tx-")
    if transport == "unix":
        address = UnixAddress(f"{tmp}/p.sock")
    else:
        address = TcpAddress(HOSTS[transport], PortAllocator().allocate(HOSTS[transport]))
    listener = socket.socket(address.family, socket.SOCK_STREAM)
    listener.bind(address.sockaddr)
    listener.listen(8)
    result: dict = {}

    def run() -> None:
        listener.settimeout(WAIT_S)
        with listener.accept()[0] as sock:
            sock.settimeout(WAIT_S)
            result.update(handler(sock) or {})

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield address, result
    finally:
        thread.join(WAIT_S * 2)
        listener.close()
        if transport == "unix":
            os.unlink(address.path)
        os.rmdir(tmp)


@contextmanager
def relayed(upstream, spec: str, *, seed: int = 7, key: str = "test"):
    tmp = tempfile.mkdtemp(prefix="sockspec-txr-")
    port = (PortAllocator().allocate(upstream.host) if isinstance(upstream, TcpAddress) else 0)
    relay = Relay(relay_address(upstream, tmp, port), upstream, parse_profile(spec),
                  seed=seed, key=key, program_upstream=True).start()
    try:
        yield relay
    finally:
        relay.stop()
        if isinstance(upstream, UnixAddress) and os.path.exists(f"{tmp}/relay.sock"):
            os.unlink(f"{tmp}/relay.sock")
        os.rmdir(tmp)


def dial(address) -> socket.socket:
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    sock.settimeout(WAIT_S)
    sock.connect(address.sockaddr)
    return sock


def read_all(sock: socket.socket) -> tuple[bytes, str]:
    """Everything until the end: (data, "FIN" or "RST")."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data, "RST"
        if not chunk:
            return data, "FIN"
        data += chunk


def echo(sock: socket.socket) -> None:
    while chunk := sock.recv(65536):
        sock.sendall(chunk)


# -- specs --------------------------------------------------------------------------------

def test_specs_parse_to_profiles_that_print_back():
    profile = parse_profile("latency:ms=50,jitter=10,direction=from+bandwidth:rate=1_000")
    assert [t.kind for t in profile.toxics] == ["latency", "bandwidth"]
    assert profile.label == "latency50-jitter10-from+bandwidth1000"
    assert parse_profile(profile.spec) == profile
    assert parse_profile("slicer").toxics == STANDARD_PROFILES["etcproxy"]
    assert parse_profile("reset:ms=200,p=0.5").label == "reset-ms200-p0.5"
    assert parse_profile("none") is None
    assert parse_profile("slow-link").label == "slow-link"


@pytest.mark.parametrize("spec, words", [
    ("latency", "latency needs ms="),
    ("latency:ms=-1", "ms must be a whole number >= 0"),
    ("latency:ms=5,speed=2", "latency has no parameter 'speed'"),
    ("bandwidth:rate=0", "rate must be a whole number >= 1"),
    ("slicer:size=2,var=2", "var must be below its size"),
    ("reset", "reset needs at= (a byte offset) or ms= (a time)"),
    ("reset:at=1,ms=1", "one of them"),
    ("latency:ms=5,direction=up", "direction must be to, from or both"),
    ("latency:ms=5,p=0", "p must be a probability"),
    ("jam", "unknown toxic 'jam'"),
    ("latency:ms", "is not KEY=VALUE"),
])
def test_bad_specs_are_one_usage_line(spec, words):
    with pytest.raises(UsageError) as caught:
        parse_profile(spec)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_toxic_tables_stack_by_profile_and_options_replace_them(tmp_path):
    tables = [{"kind": "latency", "ms": 20, "profile": "slow"},
              {"kind": "bandwidth", "rate": 1000, "profile": "slow"},
              {"kind": "slow_close", "ms": 100, "direction": "from"}]
    profiles = profiles_of_tables(tables, tmp_path / "t.toml")
    assert [p.spec for p in profiles] == ["latency:ms=20+bandwidth:rate=1000",
                                          "slow_close:ms=100,direction=from"]
    assert profiles_of_options([], profiles) == tuple(profiles)
    assert [p.label for p in profiles_of_options(["etcproxy", "none"], profiles)
            if p is not None] == ["etcproxy"]
    with pytest.raises(TargetConfigError, match=r"\[\[toxic\]\] #1: key 'kind'"):
        profiles_of_tables([{"ms": 5}], tmp_path / "t.toml")


def test_meaningless_families_are_skipped_with_the_reason():
    latency = parse_profile("latency:ms=5")
    assert "latency means nothing under the latency toxic" in skip_reason(
        "latency", ["server"], latency)
    assert skip_reason("basic", ["server"], latency) is None
    slow_close = parse_profile("slow_close:ms=5")
    assert "latency means nothing under the slow_close toxic" in skip_reason(
        "latency", ["server"], slow_close)                       # a measurement: any toxic
    assert skip_reason("client-half-close", ["client"], slow_close) is None
    assert "client-half-close means nothing under the latency toxic" in skip_reason(
        "client-half-close", ["client"], latency)
    assert "wire-level" in skip_reason("half-close", ["server", "packet_evidence"], latency)
    assert skip_reason("latency", ["server"], None) is None


# -- what each toxic imposes -------------------------------------------------------------

@pytest.mark.parametrize("transport", ["tcp", "tcp6", "unix"])
def test_limit_data_closes_after_exactly_its_bytes(transport):
    with program(transport, lambda s: {"got": read_all(s)}) as (address, seen), \
            relayed(address, "limit_data:bytes=10,direction=to") as relay:
        with dial(relay.address) as sock:
            sock.sendall(b"0123456789abcdefghij")
            assert read_all(sock) == (b"", "FIN")
    assert seen["got"] == (b"0123456789", "FIN")


def test_fin_is_forwarded_per_direction_and_a_reset_propagates():
    def half_close_then_reset(sock):
        got = read_all(sock)                    # the client's FIN arrives...
        sock.sendall(b"still here")             # ...and this side still sends
        time.sleep(0.05)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return {"got": got}

    with program("tcp", half_close_then_reset) as (address, seen), \
            relayed(address, "latency:ms=1") as relay:
        with dial(relay.address) as sock:
            sock.sendall(b"ping")
            sock.shutdown(socket.SHUT_WR)
            data, end = read_all(sock)
    assert seen["got"] == (b"ping", "FIN")
    assert (data, end) == (b"still here", "RST")


def test_latency_delays_each_direction_by_at_least_its_setting():
    with program("tcp", echo) as (address, _), relayed(address, "latency:ms=100") as relay:
        with dial(relay.address) as sock:
            started = time.monotonic()
            sock.sendall(b"x")
            assert sock.recv(1) == b"x"
            elapsed = time.monotonic() - started
    assert 0.200 <= elapsed < 0.200 + WAIT_S   # 100 ms each way, never less


def test_bandwidth_paces_to_its_rate():
    size, rate = 60_000, 100_000
    with program("tcp", lambda s: {"got": read_all(s)}) as (address, seen), \
            relayed(address, f"bandwidth:rate={rate},direction=to") as relay:
        with dial(relay.address) as sock:
            started = time.monotonic()
            sock.sendall(bytes(size))
            sock.shutdown(socket.SHUT_WR)
            read_all(sock)
            elapsed = time.monotonic() - started
    assert seen["got"] == (bytes(size), "FIN")
    # at most one 10 ms tick of catch-up ahead of the rate, ever
    assert (size - 2 * rate * 0.01) / rate <= elapsed < size / rate + WAIT_S


def first_sends(segments, port: int) -> list:
    """The data segments to ``port``, each once: a retransmission (a tail loss probe when
    the receiver's ACK is delayed) repeats a sequence number already seen."""
    seen, found = set(), []
    for segment in segments:
        if segment.dst.port == port and segment.payload and segment.seq not in seen:
            seen.add(segment.seq)
            found.append(segment)
    return found


@pytest.mark.skipif(capture_unavailable_reason() is not None, reason="no packet capture here")
@pytest.mark.parametrize("spec", ["slicer", "slicer:size=5,var=3,delay_us=2000"])
def test_slicer_segments_are_exactly_the_drawn_sizes(spec):
    """Each segment the program receives (captured on its port) is one drawn size."""
    profile = parse_profile(spec)
    slicer = profile.toxics[0]
    data = bytes(range(60))
    with program("tcp", lambda s: {"got": read_all(s)}) as (address, seen), \
            PacketCapture("lo", address.port) as capture, \
            relayed(address, spec, seed=3, key="slice") as relay:
        with dial(relay.address) as sock:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            read_all(sock)
        segments = first_sends(capture.stop().segments(), address.port)
    assert seen["got"] == (data, "FIN")
    rng = connection_random(3, "slice", 1, "to")
    expected, left = [], len(data)
    while left:
        size, var = slicer.get("size"), slicer.get("var")
        expected.append(min(left, size + (rng.randint(-var, var) if var else 0)))
        left -= expected[-1]
    assert [s.payload for s in segments] == expected
    gaps = [b.time - a.time for a, b in zip(segments, segments[1:], strict=False)]
    assert min(gaps) >= slicer.get("delay_us") / 1e6 / 2   # never two at once


def test_blackhole_forwards_its_bytes_then_nothing_and_keeps_the_connection():
    def program_side(sock):
        got = b""
        while len(got) < 5:
            got += sock.recv(100)
        sock.sendall(b"reply")                   # the other direction still flows
        sock.settimeout(0.3)
        try:
            more = sock.recv(100)                # nothing, not even the FIN
        except TimeoutError:
            more = None
        return {"got": got, "more": more}

    with program("tcp", program_side) as (address, seen), \
            relayed(address, "blackhole:after=5,direction=to") as relay:
        with dial(relay.address) as sock:
            sock.sendall(b"12345678")
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(100) == b"reply"
            time.sleep(0.4)
    assert seen == {"got": b"12345", "more": None}


def test_slow_close_holds_the_fin_back_after_the_data():
    def program_side(sock):
        data = sock.recv(100)
        got_data = time.monotonic()
        end = sock.recv(100)
        return {"data": data, "end": end, "fin_after": time.monotonic() - got_data}

    with program("tcp", program_side) as (address, seen), \
            relayed(address, "slow_close:ms=300") as relay:
        with dial(relay.address) as sock:
            sock.sendall(b"bye")
            time.sleep(0.05)
            sock.shutdown(socket.SHUT_WR)
            read_all(sock)
    assert seen["data"] == b"bye" and seen["end"] == b""
    assert 0.25 <= seen["fin_after"] < 0.3 + WAIT_S


def test_reset_at_a_byte_offset_resets_both_sides_there():
    with program("tcp", lambda s: {"got": read_all(s)}) as (address, seen), \
            relayed(address, "reset:at=7,direction=to") as relay:
        with dial(relay.address) as sock:
            sock.sendall(b"0123456789")
            assert read_all(sock) == (b"", "RST")
    assert seen["got"] == (b"0123456", "RST")


def test_reset_after_a_time():
    with program("tcp", lambda s: {"got": read_all(s)}) as (address, seen), \
            relayed(address, "reset:ms=200") as relay:
        with dial(relay.address) as sock:
            started = time.monotonic()
            assert read_all(sock) == (b"", "RST")
            assert 0.2 <= time.monotonic() - started < 0.2 + WAIT_S
    assert seen["got"] == (b"", "RST")


def test_probability_draws_replay_with_their_seed():
    def draws(seed: int) -> list[list[str]]:
        with relayed(TcpAddress("127.0.0.1", 9), "latency:ms=1,p=0.5+slow_close:ms=1,p=0.5",
                     seed=seed) as relay:
            for _ in range(12):
                with contextlib.suppress(ConnectionResetError):  # port 9 refuses: reset
                    dial(relay.address).close()
            deadline = time.monotonic() + WAIT_S
            while len(relay.links) < 12 and time.monotonic() < deadline:
                time.sleep(0.01)
        return [link.active for link in relay.links]

    first = draws(11)
    assert draws(11) == first
    assert draws(12) != first
    assert {len(active) for active in first} > {1}   # some connections got 0 or 2 toxics
