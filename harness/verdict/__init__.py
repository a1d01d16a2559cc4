"""Judging: turn observations into a verdict with evidence a person can act on.

Pure functions over bytes and numbers; no sockets. A failed check raises
ScenarioFailed, an AssertionError, so pytest reports the item as failed (not
as an error of the harness).
"""

from __future__ import annotations

from typing import NoReturn


class ScenarioFailed(AssertionError):
    """The server under test broke the behaviour a scenario checks."""

    def __init__(self, summary: str, **facts: object) -> None:
        super().__init__(summary)
        self.summary = summary
        self.facts = facts

    def __str__(self) -> str:
        lines = [self.summary]
        lines += [f"  {key.replace('_', ' ')}: {value}" for key, value in self.facts.items()]
        return "\n".join(lines)


def fail(summary: str, **facts: object) -> NoReturn:
    raise ScenarioFailed(summary, **facts)


def expect(condition: bool, summary: str, **facts: object) -> None:
    if not condition:
        raise ScenarioFailed(summary, **facts)


def first_difference(expected: bytes, observed: bytes) -> int | None:
    """Offset of the first differing byte, the shorter length if one is a prefix, or None."""
    if expected == observed:  # C-speed compare first: the byte loop is for failures only
        return None
    for offset, (a, b) in enumerate(zip(expected, observed, strict=False)):
        if a != b:
            return offset
    if len(expected) != len(observed):
        return min(len(expected), len(observed))
    return None


def excerpt(data: bytes, offset: int, width: int = 16) -> str:
    start = max(0, offset - width // 2)
    return f"@{start}: {data[start:start + width].hex(' ')}" if data[start:] else "(end of data)"


def expect_same_bytes(expected: bytes, observed: bytes, what: str, **facts: object) -> None:
    """Fail with lengths, the first differing offset and the bytes around it."""
    offset = first_difference(expected, observed)
    if offset is None:
        return
    fail(
        f"{what}: {len(observed)} bytes came back where {len(expected)} were sent, "
        f"first difference at offset {offset}",
        expected_bytes=len(expected),
        observed_bytes=len(observed),
        first_differing_offset=offset,
        expected_there=excerpt(expected, offset),
        observed_there=excerpt(observed, offset),
        **facts,
    )
