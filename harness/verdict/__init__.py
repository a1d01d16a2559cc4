"""Judging: turn observations into a verdict with evidence a person can act on.

Pure functions over bytes and numbers; no sockets. A failed check raises
ScenarioFailed, an AssertionError, so pytest reports the item as failed (not
as an error of the harness).

Every check has a level (README, "Levels"):

- ``MUST``: required by the RFCs (RFC 9293, RFC 9112/9110, RFC 862) or by POSIX
  socket semantics, or a defect that loses data or service: a miss is ``failed``.
- ``SHOULD``: a recommendation, hardening or common practice: a miss is a
  ``warning`` (the run still exits 0), ``failed`` under ``--strict``.
- ``INFO``: a measured figure judged against a default threshold: a miss is a
  ``warning``, also under ``--strict``; a threshold the user gave is ``MUST``.

A check's level is the ``level=`` of its ``expect``/``fail`` call; without one,
the level of its scenario (``@scenario(..., level=SHOULD)``), which is ``MUST``
unless declared otherwise.
"""

from __future__ import annotations

from typing import NoReturn

MUST = "MUST"
SHOULD = "SHOULD"
INFO = "INFO"
LEVELS = (MUST, SHOULD, INFO)


def check_level(level: str | None) -> str | None:
    if level is not None and level not in LEVELS:
        raise ValueError(f"unknown level {level!r}: use MUST, SHOULD or INFO")
    return level


def is_warning(level: str, strict: bool) -> bool:
    """Does a miss at ``level`` make a warning (True) or a failure (False)?"""
    return level == INFO or (level == SHOULD and not strict)


class ScenarioFailed(AssertionError):
    """The server under test broke the behaviour a scenario checks.

    ``level``: the check's level, or None for "the scenario's level".
    """

    def __init__(self, summary: str, *, level: str | None = None, **facts: object) -> None:
        super().__init__(summary)
        self.summary = summary
        self.level = check_level(level)
        self.facts = facts

    def __str__(self) -> str:
        lines = [self.summary]
        lines += [f"  {key.replace('_', ' ')}: {value}" for key, value in self.facts.items()]
        return "\n".join(lines)


def fail(summary: str, *, level: str | None = None, **facts: object) -> NoReturn:
    raise ScenarioFailed(summary, level=level, **facts)


def expect(condition: bool, summary: str, *, level: str | None = None, **facts: object) -> None:
    """Fail with ``summary`` and ``facts`` unless ``condition``; ``level``: MUST, SHOULD
    (default: the scenario's level)."""
    if not condition:
        raise ScenarioFailed(summary, level=level, **facts)


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
