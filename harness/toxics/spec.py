"""Toxic specs: what ``--toxic SPEC`` and ``[[toxic]]`` tables say, parsed and checked.

A profile is one value of the matrix's toxic dimension: ``none``, a standard
profile's name (STANDARD_PROFILES), or toxics stacked with ``+``::

    latency:ms=50,jitter=10,direction=from
    slicer                                  # etcproxy: 1 byte a segment, 1 ms apart
    latency:ms=20+bandwidth:rate=200000
    reset:at=100,p=0.5

Every toxic takes ``direction`` (``to`` the program under test, ``from`` it, or
``both``, the default) and ``p`` (the probability that it acts on a connection,
default 1). Anything wrong is a UsageError (one line, exit 2) naming the spec.
"""

from __future__ import annotations

import math
import random
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from sockspec.errors import TargetConfigError, UsageError

DIRECTIONS = ("both", "to", "from")
NO_TOXICS = "none"


@dataclass(frozen=True)
class Param:
    """One parameter of a kind of toxic: an int (ms, bytes, bytes/s, µs) >= ``least``."""

    name: str
    default: int | None      # None: required
    least: int = 0
    what: str = ""


# kind -> its parameters, the first being the one its label shows (latency50).
KINDS: dict[str, tuple[Param, ...]] = {
    "latency": (Param("ms", None, 0, "delay added to each chunk, ms"),
                Param("jitter", 0, 0, "delay varies by up to +/- this, ms")),
    "bandwidth": (Param("rate", None, 1, "bytes per second"),),
    "slicer": (Param("size", 1, 1, "average segment size, bytes"),
               Param("var", 0, 0, "segment sizes vary by up to +/- this, bytes"),
               Param("delay_us", 1000, 0, "pause between segments, µs")),
    "limit_data": (Param("bytes", None, 0, "bytes forwarded, then both ends closed (FIN)"),),
    "blackhole": (Param("after", 0, 0, "bytes forwarded, then nothing (not even the FIN)"),),
    "slow_close": (Param("ms", None, 0, "delay of the FIN, ms"),),
    "reset": (Param("at", -1, 0, "byte offset at which both ends are reset (RST)"),
              Param("ms", -1, 0, "time after the connection at which both ends are reset")),
}
COMMON = ("direction", "p")
# Kinds that change when bytes arrive: a figure of the program's own timing means
# nothing under them (sockspec.toxics.applies).
TIMING_KINDS = frozenset({"latency", "bandwidth", "slicer"})
# Kinds that pace the bytes (rate below a loopback's by orders of magnitude).
PACING_KINDS = frozenset({"bandwidth", "slicer"})


@dataclass(frozen=True)
class Toxic:
    kind: str
    params: tuple[tuple[str, int], ...]   # every parameter of the kind, in KINDS order
    direction: str = "both"
    p: float = 1.0

    def get(self, name: str) -> int:
        return dict(self.params)[name]

    def acts_on(self, direction: str) -> bool:
        """``direction`` is "to" or "from" (the program under test)."""
        return self.direction in ("both", direction)

    def _given(self) -> list[tuple[str, object]]:
        defaults = {param.name: param.default for param in KINDS[self.kind]}
        given: list[tuple[str, object]] = [(k, v) for k, v in self.params if v != defaults[k]]
        if self.direction != "both":
            given.append(("direction", self.direction))
        if self.p != 1.0:
            given.append(("p", f"{self.p:g}"))
        return given

    @property
    def spec(self) -> str:
        """The canonical text: parses back to this toxic."""
        given = self._given()
        return self.kind + (":" + ",".join(f"{k}={v}" for k, v in given) if given else "")

    @property
    def label(self) -> str:
        """Its part of an item id: ``latency50``, ``latency50-jitter10-from``, ``slicer``."""
        given = self._given()
        first = KINDS[self.kind][0].name
        head = self.kind + next((str(v) for k, v in given if k == first), "")
        rest = [str(v) if k == "direction" else f"{k}{v}" for k, v in given if k != first]
        return "-".join([head, *rest])

    def as_record(self) -> dict:
        return {"kind": self.kind, **dict(self.params), "direction": self.direction,
                "p": self.p}


@dataclass(frozen=True)
class ToxicProfile:
    """The toxics active together on every connection of an item (one matrix value)."""

    toxics: tuple[Toxic, ...]
    name: str = ""          # a standard profile's name, or a [[toxic]] table's profile

    @property
    def spec(self) -> str:
        """What ``--toxic`` takes to make this profile again."""
        if self.name in STANDARD_PROFILES and STANDARD_PROFILES[self.name] == self.toxics:
            return self.name
        return "+".join(t.spec for t in self.toxics)

    @property
    def label(self) -> str:
        """The item id's suffix: a standard profile's name, else the toxics' labels."""
        if self.name in STANDARD_PROFILES and STANDARD_PROFILES[self.name] == self.toxics:
            return self.name
        return "+".join(t.label for t in self.toxics)

    def kinds(self) -> set[str]:
        return {t.kind for t in self.toxics}

    def as_record(self, seed: int) -> dict:
        """The ``toxics`` field of a results record."""
        return {"profile": self.label, "spec": self.spec, "seed": seed,
                "toxics": [t.as_record() for t in self.toxics]}


def _toxic(kind: str, **values: int | str | float) -> Toxic:
    params = tuple((p.name, int(values.get(p.name, p.default))) for p in KINDS[kind])
    return Toxic(kind, params, str(values.get("direction", "both")), float(values.get("p", 1)))


# The standard profiles: the catalogue passes on the reference programs under each
# (tests/test_toxics_catalogue.py).
STANDARD_PROFILES: dict[str, tuple[Toxic, ...]] = {
    # a slow, jittery link: 20 ms +/- 5 each way, 256 KB/s
    "slow-link": (_toxic("latency", ms=20, jitter=5), _toxic("bandwidth", rate=256_000)),
    # Test::Nginx's etcproxy: every byte its own segment, 1 ms apart, both ways
    "etcproxy": (_toxic("slicer"),),
    # every FIN held back 200 ms, both ways
    "lossy-close": (_toxic("slow_close", ms=200),),
}


def parse_toxic(text: str, where: str = "--toxic") -> Toxic:
    """One ``KIND[:KEY=VALUE,...]``; UsageError naming ``where``."""
    kind, _, rest = text.strip().partition(":")
    if kind not in KINDS:
        raise UsageError(f"{where}: unknown toxic {kind!r} in {text!r}; known: "
                         f"{', '.join(KINDS)} (or a profile: {', '.join(STANDARD_PROFILES)}, "
                         f"none)")
    values: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not value:
            raise UsageError(f"{where}: {item!r} in {text!r} is not KEY=VALUE")
        if key in values:
            raise UsageError(f"{where}: {key!r} is given twice in {text!r}")
        values[key.strip()] = value.strip()
    return toxic_of(kind, values, f"{where}: {text!r}")


def toxic_of(kind: str, values: dict[str, object], where: str) -> Toxic:
    """A toxic from its parameters (text or numbers); UsageError naming ``where``."""
    params = {p.name: p for p in KINDS[kind]}
    unknown = [k for k in values if k not in params and k not in COMMON]
    if unknown:
        raise UsageError(f"{where}: {kind} has no parameter {unknown[0]!r}; it takes "
                         f"{', '.join([*params, *COMMON])}")
    numbers: list[tuple[str, int]] = []
    for name, param in params.items():
        if name not in values:
            if param.default is None:
                raise UsageError(f"{where}: {kind} needs {name}= ({param.what})")
            numbers.append((name, param.default))
            continue
        number = _integer(values[name])
        if number is None or number < param.least:
            raise UsageError(f"{where}: {name} must be a whole number >= {param.least} "
                             f"({param.what}), got {values[name]!r}")
        numbers.append((name, number))
    direction = str(values.get("direction", "both"))
    if direction not in DIRECTIONS:
        raise UsageError(f"{where}: direction must be to, from or both, got {direction!r}")
    p = _probability(values.get("p", 1))
    if p is None:
        raise UsageError(f"{where}: p must be a probability in (0, 1], got {values['p']!r}")
    toxic = Toxic(kind, tuple(numbers), direction, p)
    if kind == "reset" and (toxic.get("at") < 0) == (toxic.get("ms") < 0):
        raise UsageError(f"{where}: reset needs at= (a byte offset) or ms= (a time), "
                         f"one of them")
    if kind == "slicer" and toxic.get("var") >= toxic.get("size"):
        raise UsageError(f"{where}: slicer's var must be below its size (segments of at "
                         f"least one byte)")
    return toxic


def _integer(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).replace("_", "")
    return int(text) if re.fullmatch(r"\d+", text) else None


def _probability(value: object) -> float | None:
    try:
        p = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        return None
    return p if math.isfinite(p) and 0 < p <= 1 else None


def parse_profile(text: str, where: str = "--toxic") -> ToxicProfile | None:
    """One ``--toxic`` value: ``none`` (None), a standard profile, or toxics joined by +."""
    text = text.strip()
    if text == NO_TOXICS:
        return None
    if text in STANDARD_PROFILES:
        return ToxicProfile(STANDARD_PROFILES[text], text)
    if not text:
        raise UsageError(f"{where} is empty")
    return ToxicProfile(tuple(parse_toxic(part, where) for part in text.split("+")))


def profiles_of_tables(tables: object, file: Path) -> list[ToxicProfile]:
    """The ``[[toxic]]`` tables of a targets file: one toxic each (``kind`` and its
    parameters, ``direction``, ``p``); tables with the same ``profile`` name stack into
    one profile, a table without one is a profile of its own."""
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise TargetConfigError(f"{file}: 'toxic' must be an array of tables ([[toxic]])")
    grouped: dict[str, list[Toxic]] = {}
    for index, table in enumerate(tables, start=1):
        where = f"{file}: [[toxic]] #{index}"
        values = dict(table)
        kind, name = values.pop("kind", None), values.pop("profile", None)
        if kind not in KINDS:
            raise TargetConfigError(f"{where}: key 'kind' must be one of {', '.join(KINDS)}, "
                                    f"got {kind!r}")
        if name is not None and not (isinstance(name, str) and name.strip()):
            raise TargetConfigError(f"{where}: key 'profile' must be a name, got {name!r}")
        try:
            toxic = toxic_of(kind, values, where)
        except UsageError as exc:
            raise TargetConfigError(str(exc)) from None
        grouped.setdefault(name or f"#{index}", []).append(toxic)
    return [ToxicProfile(tuple(toxics), "" if key.startswith("#") else key)
            for key, toxics in grouped.items()]


def profiles_of_options(specs: list[str] | tuple[str, ...],
                        from_file: list[ToxicProfile]) -> tuple[ToxicProfile | None, ...]:
    """The run's toxic profiles: every ``--toxic`` (they replace a targets file's
    [[toxic]] tables), else the file's, else none; duplicates (by label) once."""
    chosen = [parse_profile(text) for text in specs] if specs else list(from_file)
    if not chosen:
        return (None,)
    unique: dict[str, ToxicProfile | None] = {}
    for profile in chosen:
        unique.setdefault(profile.label if profile else NO_TOXICS, profile)
    return tuple(unique.values())


def parse_seed(text: str) -> int:
    """``--toxic-seed N`` (argparse type): a whole number."""
    import argparse

    value = _integer(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}")
    return value


def default_seed(profiles: tuple[ToxicProfile | None, ...]) -> int:
    """The seed when ``--toxic-seed`` is not given: derived from the profiles' specs, so
    the same command draws the same on every run and in every xdist worker."""
    text = "+".join(p.spec for p in profiles if p is not None)
    return zlib.crc32(text.encode())


def connection_random(seed: int, key: str, number: int, part: str = "") -> random.Random:
    """The random draws of connection ``number`` (1, 2, ... in accept order) of the item
    ``key``: which toxics act on it (``part`` ""), the jitter and segment sizes of each
    direction (``part`` "to", "from"), each from its own stream so that the order in
    which the directions draw never changes what they draw."""
    return random.Random(f"{seed}/{key}/{number}/{part}")
