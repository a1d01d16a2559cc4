"""Bulk throughput: echo both ways and HTTP download, verified with xxh3."""

import socket

import pytest
from measure_servers import ScriptedServer, echo, echo_corrupted

from sockspec.measure.plan import ImpossibleLoad
from sockspec.measure.throughput import (
    ThroughputRequest,
    pattern_block,
    run_download_throughput,
    run_echo_throughput,
    stream_digest,
    write_pattern_file,
)
from sockspec.reference.server import ReferenceServer
from sockspec.reference.stream_digest import bytes_digest
from sockspec.transport import StreamEnd, TcpAddress

SIZE = 4 * 1024 * 1024 + 123  # not a multiple of the 1 MiB block


def echo_first_mebibyte_then_close(conn: socket.socket) -> None:
    echoed = 0
    while echoed < 1024 * 1024 and (data := conn.recv(min(65536, 1024 * 1024 - echoed))):
        conn.sendall(data)
        echoed += len(data)


def test_pattern_has_no_nul_and_the_stream_digest_matches_its_bytes():
    block = pattern_block()
    assert len(block) == 1024 * 1024 and 0 not in block
    assert pattern_block() == block  # fixed seed: the same bytes every run
    total = 2 * len(block) + 10
    assert stream_digest(block, total) == bytes_digest(block + block + block[:10])


@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix"])
def test_an_echo_of_several_mebibytes_is_verified(unix):
    with ScriptedServer(echo, unix=unix) as address:
        result = run_echo_throughput(address, ThroughputRequest(total_bytes=SIZE, timeout_s=10))
    assert result.verified, result.describe()
    assert result.end is StreamEnd.LIMIT and result.received_bytes == SIZE
    assert result.gbit_per_s == pytest.approx(result.gbyte_per_s * 8)


def test_a_cut_transfer_is_not_verified():
    with ScriptedServer(echo_first_mebibyte_then_close) as address:
        result = run_echo_throughput(address, ThroughputRequest(total_bytes=SIZE, timeout_s=10))
    assert not result.verified and not result.complete
    # closing with our bytes unread sends RST, which may discard some of the echo too
    assert result.received_bytes <= 1024 * 1024
    assert result.end in (StreamEnd.FIN, StreamEnd.RST)


def test_altered_bytes_change_the_digest():
    with ScriptedServer(echo_corrupted) as address:
        result = run_echo_throughput(address, ThroughputRequest(total_bytes=SIZE, timeout_s=10))
    assert result.complete and not result.verified
    assert result.received_digest != result.expected_digest


def test_without_verification_no_digest_is_computed():
    with ScriptedServer(echo) as address:
        result = run_echo_throughput(address, ThroughputRequest(total_bytes=SIZE,
                                                                verify=False))
    assert result.complete and result.received_digest is None


def test_an_http_download_is_verified_against_the_file(tmp_path):
    digest = write_pattern_file(tmp_path / "big.bin", SIZE)
    with ReferenceServer(TcpAddress("127.0.0.1", 0), "http", str(tmp_path)) as address:
        good = run_download_throughput(address, "/big.bin", size=SIZE, digest=digest)
        missing = run_download_throughput(address, "/none.bin", size=SIZE, digest=digest)
    assert good.verified, good.describe()
    assert not missing.verified and "404" in missing.send_error


@pytest.mark.parametrize("kwargs, words", [
    ({"total_bytes": 0}, "at least 1 byte"), ({"total_bytes": -1}, "at least 1 byte"),
    ({"timeout_s": 0}, "timeout"), ({"deadline_s": -2}, "deadline")])
def test_impossible_transfers_are_refused(kwargs, words):
    with pytest.raises(ImpossibleLoad, match=words):
        ThroughputRequest(**kwargs).validate()
