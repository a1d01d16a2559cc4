"""Verdict helpers: evidence with offsets, lengths and the bytes around a difference."""

import pytest

from sockspec.verdict import ScenarioFailed, expect, expect_same_bytes, first_difference


def test_first_difference():
    assert first_difference(b"abc", b"abc") is None
    assert first_difference(b"abc", b"abd") == 2
    assert first_difference(b"abc", b"ab") == 2
    assert first_difference(b"", b"x") == 0


def test_expect_same_bytes_reports_offset_and_lengths():
    sent = bytes(range(256))
    with pytest.raises(ScenarioFailed) as caught:
        expect_same_bytes(sent, sent[:100], "echo", stream_end="FIN")
    text = str(caught.value)
    assert "100 bytes came back where 256 were sent" in text
    assert "first differing offset: 100" in text
    assert "stream end: FIN" in text


def test_expect_passes_and_fails_with_facts():
    expect(True, "never shown")
    with pytest.raises(ScenarioFailed, match="closed with RST") as caught:
        expect(False, "closed with RST", errno="ECONNRESET")
    assert caught.value.facts == {"errno": "ECONNRESET"}
    assert isinstance(caught.value, AssertionError)
