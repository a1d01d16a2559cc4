"""Unit tests for harness/protocol/echo.py."""

from __future__ import annotations

import pytest

from harness.protocol.echo import EchoBack, EchoSession, FinishWithFin


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
