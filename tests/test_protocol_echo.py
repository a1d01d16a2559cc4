"""Unit tests for harness/protocol/echo.py."""

from __future__ import annotations

import pytest

from sockspec.protocol.echo import EchoBack, EchoSession, FinishWithFin, echo_until_fin


def test_each_chunk_is_owed_back_whole() -> None:
    session = EchoSession()
    assert [session.received(n) for n in (1, 65536, 7)] == [EchoBack(1), EchoBack(65536), EchoBack(7)]
    assert session.bytes_echoed == 65544
    assert not session.peer_finished


def test_eof_owes_a_fin() -> None:
    session = EchoSession()
    session.received(10)
    assert session.received(0) == FinishWithFin()
    assert session.peer_finished
    assert session.bytes_echoed == 10


def test_eof_first_owes_only_a_fin() -> None:
    assert EchoSession().received(0) == FinishWithFin()


@pytest.mark.parametrize("size", [0, 5])
def test_nothing_after_eof(size: int) -> None:
    session = EchoSession()
    session.received(0)
    with pytest.raises(ValueError):
        session.received(size)


def test_negative_count_rejected() -> None:
    with pytest.raises(ValueError):
        EchoSession().received(-1)


class ScriptedPeer:
    """Delivers chunks to recv_into (then EOF) and logs every call in order."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.log: list[tuple[str, bytes]] = []

    def recv_into(self, buffer: bytearray) -> int:
        chunk = self.chunks.pop(0) if self.chunks else b""
        buffer[: len(chunk)] = chunk
        self.log.append(("recv", chunk))
        return len(chunk)

    def send_all(self, data: memoryview) -> None:
        self.log.append(("send", bytes(data)))


def test_echo_loop_sends_each_chunk_back_before_reading_again() -> None:
    chunks = [b"a", bytes(range(256)), b"\0" * 4096]
    peer = ScriptedPeer(chunks)
    buffer = bytearray(8192)
    assert echo_until_fin(peer.recv_into, peer.send_all, buffer) == 1 + 256 + 4096
    expected = [step for chunk in chunks for step in (("recv", chunk), ("send", chunk))]
    assert peer.log == [*expected, ("recv", b"")]
    buffer.extend(b"x")  # the loop's memoryview is released: the buffer may be resized


def test_echo_loop_on_immediate_eof_sends_nothing() -> None:
    peer = ScriptedPeer([])
    assert echo_until_fin(peer.recv_into, peer.send_all, bytearray(16)) == 0
    assert peer.log == [("recv", b"")]


def test_echo_loop_passes_io_errors_through() -> None:
    def reset(_buffer: bytearray) -> int:
        raise ConnectionResetError(104, "Connection reset by peer")

    with pytest.raises(ConnectionResetError):
        echo_until_fin(reset, lambda _data: None, bytearray(16))
