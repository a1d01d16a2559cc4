"""The reference client against the reference server, as subprocesses over TCP, ::1 and Unix.

The server is started per module and transport by tests/reference_support.py
(own process group, bounded readiness wait, SIGKILL to the group afterwards).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from reference_support import TRANSPORTS, RunningServer, running_server

from sockspec.errors import PeerError
from sockspec.reference.client import (
    download,
    echo_roundtrip,
    fetch,
    file_digest,
    ping_pong,
    upload_file,
)
from sockspec.transport import StreamEnd

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CLIENT_TIMEOUT_S = 15.0  # generous: a busy 2-core machine; only "did not hang" matters
FILE_SIZES = [0, 1, 4095, 4097, 100_003]
ALL_BYTES = bytes(range(256))


@pytest.fixture(scope="module", params=TRANSPORTS)
def echo_server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    with running_server("echo", request.param) as server:
        yield server


@pytest.fixture(scope="module")
def served_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("served")
    for size in FILE_SIZES:
        # Every byte value, at a stride that does not line up with any buffer size.
        (root / f"f{size}.bin").write_bytes(bytes((i * 131 + 7) % 256 for i in range(size)))
    (root / "big.bin").write_bytes(os.urandom(6 << 20))
    return root


@pytest.fixture(scope="module", params=TRANSPORTS)
def http_server(request: pytest.FixtureRequest, served_root: Path) -> Iterator[RunningServer]:
    with running_server("http", request.param, root=str(served_root)) as server:
        yield server


def test_echo_of_every_byte_value(echo_server: RunningServer) -> None:
    result = echo_roundtrip(echo_server.address, ALL_BYTES * 512, timeout=CLIENT_TIMEOUT_S)
    assert result.ok, result.describe()


def test_echo_in_small_chunks(echo_server: RunningServer) -> None:
    result = echo_roundtrip(echo_server.address, ALL_BYTES * 16, timeout=CLIENT_TIMEOUT_S,
                            chunk=13)
    assert result.ok, result.describe()


def test_echo_of_nothing_is_just_fin(echo_server: RunningServer) -> None:
    result = echo_roundtrip(echo_server.address, b"", timeout=CLIENT_TIMEOUT_S)
    assert result.ok and result.received == b"", result.describe()


def test_upload_by_sendfile_comes_back_unchanged(
    echo_server: RunningServer, served_root: Path
) -> None:
    path = served_root / "big.bin"
    result = upload_file(echo_server.address, path, timeout=CLIENT_TIMEOUT_S)
    assert result.sent == result.size == path.stat().st_size, result.describe()
    assert result.received_length == result.size and result.end is StreamEnd.FIN
    assert result.received_digest == file_digest(path)


def test_ping_pong(echo_server: RunningServer) -> None:
    times = ping_pong(echo_server.address, 64, 50, timeout=CLIENT_TIMEOUT_S)
    assert len(times) == 50


@pytest.mark.parametrize("size", FILE_SIZES)
def test_download_verifies_length_and_digest(
    http_server: RunningServer, served_root: Path, size: int
) -> None:
    path = served_root / f"f{size}.bin"
    response = download(http_server.address, f"/f{size}.bin", expect_length=size,
                        expect_digest=file_digest(path), timeout=CLIENT_TIMEOUT_S)
    assert response.status == 200 and response.expected_length == size
    assert response.end is StreamEnd.FIN and response.excess_bytes == 0
    assert response.body_first_bytes == path.read_bytes()[:4096]


def test_download_of_a_multi_mib_file(http_server: RunningServer, served_root: Path) -> None:
    path = served_root / "big.bin"
    response = download(http_server.address, "/big.bin", expect_length=path.stat().st_size,
                        expect_digest=file_digest(path), timeout=CLIENT_TIMEOUT_S)
    assert response.body_last_bytes == path.read_bytes()[-4096:]


def test_missing_file_is_404_and_download_refuses_it(http_server: RunningServer) -> None:
    response = fetch(http_server.address, "/absent.bin", timeout=CLIENT_TIMEOUT_S)
    assert response.status == 404 and response.complete
    with pytest.raises(PeerError, match="status 404"):
        download(http_server.address, "/absent.bin", expect_length=None, expect_digest=None,
                 timeout=CLIENT_TIMEOUT_S)


def test_wrong_expectations_are_caught(http_server: RunningServer, served_root: Path) -> None:
    with pytest.raises(PeerError, match="body is 4097 bytes, expected 4096"):
        download(http_server.address, "/f4097.bin", expect_length=4096, expect_digest=None,
                 timeout=CLIENT_TIMEOUT_S)
    with pytest.raises(PeerError, match="body digest"):
        download(http_server.address, "/f4097.bin", expect_length=None,
                 expect_digest=file_digest(served_root / "f4095.bin"), timeout=CLIENT_TIMEOUT_S)


def test_cli_get_of_a_file(
    http_server: RunningServer, served_root: Path, tmp_path: Path
) -> None:
    output = tmp_path / "got.bin"
    process = subprocess.Popen(
        [sys.executable, "-m", "sockspec.reference.client", "get", str(http_server.address),
         "/f100003.bin", "-o", str(output), "--expect-length", "100003",
         "--expect-digest", file_digest(served_root / "f100003.bin")],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    assert process.returncode == 0, stderr
    assert stderr.decode().startswith("HTTP 200 OK, 100003 body bytes")
    assert output.read_bytes() == (served_root / "f100003.bin").read_bytes()
