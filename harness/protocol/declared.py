"""Declared protocols: a ``[[protocol]]`` table says how a program frames its messages,
which exchanges it answers and which properties the generic families may rely on.

The format is a public contract (README, "Testing your own protocol"), version 1
(``version = 1``, the default). Everything here is parsing and pure byte work; the
sockets side is sockspec.protocol.conversation.

Payloads, not wire bytes: ``send`` and ``expect`` hold a message's payload and the
framing adds what the wire needs (the line end, the delimiter, the length prefix).
A reply is matched frame by frame against its expectation: exact bytes (text or
hex), a regex over the frame, "the same payload as sent" (``expect_echo``), or any
well-framed reply (``expect_any``).

Templates: in text, ``{name}`` is a variable: ``{n}`` (the exchange's sequence
number on its connection, from 1), ``{payload}`` and ``{size}`` (filled by the
families that need test bytes: binary-integrity, partial-writes, throughput) and any
name an earlier exchange captured; ``{hex:81 00}`` is raw bytes (text is UTF-8, so a
byte above 0x7f needs it). ``{{`` and ``}}`` are literal braces.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from sockspec.errors import TargetConfigError

FORMAT_VERSION = 1
BUILTIN_PROFILES = ("echo", "http")
MAX_FRAME = 64 * 1024 * 1024
BUILTIN_VARIABLES = ("n", "payload", "size")
ALPHABETS = ("all", "text", "no-delimiter", "no-whitespace")
# ASCII whitespace: what separates the words of an inline text protocol (bytes.split()).
WHITESPACE = b" \t\n\v\f\r"

PROTOCOL_KEYS = ("name", "version", "description", "framing", "exchange", "properties",
                 "binary", "large_reply", "max_frame")
EXCHANGE_KEYS = ("name", "send", "send_hex", "send_repeat", "send_random", "expect",
                 "expect_hex", "expect_regex", "expect_echo", "expect_any", "capture",
                 "reply", "reply_hex")
FRAMING_KINDS = ("line", "crlf", "delimiter", "length", "fixed", "close")
FRAMING_KEYS = ("kind", "delimiter", "delimiter_hex", "width", "endian", "counts_header", "size")
PROPERTY_KEYS = ("answers_after_fin", "keeps_connection", "concurrent")
SEQUENCE_KEYS = ("exchanges", "size", "alphabet")


class ProtocolError(TargetConfigError):
    """A declaration that cannot be used: one line naming the file, the line and the key."""


# -- where a key is in the file (tomllib keeps no positions) ------------------------------

_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\"'.-]+)\s*=")


class Locator:
    """Lines of a TOML file's tables and keys, so an error can name its line.

    ``line(("protocol", 1), ("exchange", 0), key="expect")``: the line of key
    ``expect`` in the first ``[[protocol.exchange]]`` of the second ``[[protocol]]``
    (indexes from 0), or of the nearest table header when the key is not on a line
    of its own (inline tables).
    """

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def line(self, *path: tuple[str, int], key: str | None = None) -> int:
        start, end = 0, len(self.lines)
        prefix = ""
        best = 1
        for name, index in path:
            full = f"{prefix}.{name}" if prefix else name
            found = self._header(full, index, start, end)
            if found is None:   # an inline table: the line of its key
                return self._key(name, start, end) or best
            best = found + 1
            start = found + 1
            end = next((n for n in range(start, end) if (h := self._name(n)) is not None
                        and not h.startswith(full + ".")), end)
            prefix = full
        if key is not None:
            return self._key(key, start, end) or best
        return best

    def _name(self, number: int) -> str | None:
        header = _HEADER.match(self.lines[number])
        return header.group(1).strip() if header else None

    def _key(self, key: str, start: int, end: int) -> int | None:
        """The line of ``key =`` among the table's own keys (before any sub-table)."""
        for number in range(start, end):
            if self._name(number) is not None:
                return None
            match = _KEY.match(self.lines[number])
            if match and match.group(1).strip("\"'").split(".")[0] == key:
                return number + 1
        return None

    def _header(self, full: str, index: int, start: int, end: int) -> int | None:
        seen = -1
        for number in range(start, end):
            if self._name(number) == full:
                seen += 1
                if seen == index:
                    return number
        return None


# -- framing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Framing:
    """How messages are cut out of the stream."""

    kind: str                       # FRAMING_KINDS
    delimiter: bytes = b""          # line, crlf, delimiter
    width: int = 0                  # length: bytes of the prefix (1, 2, 4 or 8)
    endian: str = "big"             # length: "big" or "little"
    counts_header: bool = False     # length: the prefix counts itself
    size: int = 0                   # fixed: bytes per message
    max_frame: int = MAX_FRAME

    def encode(self, payload: bytes) -> bytes:
        """The wire bytes of one message carrying ``payload``."""
        if self.kind in ("line", "crlf", "delimiter"):
            return payload + self.delimiter
        if self.kind == "length":
            length = len(payload) + (self.width if self.counts_header else 0)
            return length.to_bytes(self.width, self.endian) + payload
        if self.kind == "fixed" and len(payload) != self.size:
            raise ValueError(f"a fixed-size message is {self.size} bytes, not {len(payload)}")
        return payload

    def decode(self, buffer: bytes | bytearray, *, at_end: bool = False,
               searched: int = 0) -> tuple[bytes, int] | None:
        """One message's payload from the front of ``buffer`` and the bytes it used, or
        None while it is incomplete. ``at_end``: the peer's FIN came (ends a "close"
        message); ``searched``: the first bytes already searched for the delimiter (a
        reader calling again after each recv searches only what is new). Raises
        ValueError on a frame that breaks the framing."""
        if self.kind in ("line", "crlf", "delimiter"):
            start = max(0, searched - len(self.delimiter) + 1)
            end = buffer.find(self.delimiter, start)
            if end < 0:
                if len(buffer) > self.max_frame:
                    raise ValueError(f"no {self.describe_delimiter()} within {self.max_frame} bytes")
                return None
            return bytes(buffer[:end]), end + len(self.delimiter)
        if self.kind == "length":
            if len(buffer) < self.width:
                return None
            length = int.from_bytes(buffer[:self.width], self.endian)
            body = length - self.width if self.counts_header else length
            if body < 0 or body > self.max_frame:
                raise ValueError(f"length prefix {length} is out of range")
            if len(buffer) < self.width + body:
                return None
            return bytes(buffer[self.width:self.width + body]), self.width + body
        if self.kind == "fixed":
            if len(buffer) < self.size:
                return None
            return bytes(buffer[:self.size]), self.size
        # close: the message is everything up to the peer's FIN
        return (bytes(buffer), len(buffer)) if at_end else None

    def forbidden(self) -> bytes:
        """Bytes a payload may not hold (they would end the message early)."""
        return self.delimiter if self.kind in ("line", "crlf", "delimiter") else b""

    def describe_delimiter(self) -> str:
        return {"line": "line end (\\n)", "crlf": "line end (\\r\\n)"}.get(
            self.kind, f"delimiter {self.delimiter!r}")

    def describe(self) -> str:
        if self.kind == "length":
            return (f"{self.width}-byte {self.endian}-endian length prefix"
                    + (" (counting itself)" if self.counts_header else ""))
        if self.kind == "fixed":
            return f"fixed {self.size}-byte messages"
        if self.kind == "close":
            return "one message per connection, ended by the server's close"
        return f"messages ended by a {self.describe_delimiter()}"


# -- templated bytes ----------------------------------------------------------------------

_TEMPLATE_PART = re.compile(
    r"\{\{|\}\}|\{hex:([0-9A-Fa-f ]*)\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|\{|\}")


@dataclass(frozen=True)
class Template:
    """Text with ``{variables}``: a tuple of literal bytes and variable names."""

    parts: tuple[bytes | str, ...]

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(p for p in self.parts if isinstance(p, str))

    def render(self, values: dict[str, bytes]) -> bytes:
        return b"".join(p if isinstance(p, bytes) else values[p] for p in self.parts)

    @classmethod
    def parse(cls, text: str) -> Template:
        """ValueError on a lone brace or an empty ``{}``."""
        parts: list[bytes | str] = []
        position = 0
        for match in _TEMPLATE_PART.finditer(text):
            literal = text[position:match.start()]
            if literal:
                parts.append(literal.encode())
            token = match.group(0)
            if token in ("{{", "}}"):
                parts.append(token[0].encode())
            elif match.group(1) is not None:
                try:
                    parts.append(bytes.fromhex(match.group(1)))
                except ValueError:
                    raise ValueError(f"{token!r} needs whole bytes of hex digits") from None
            elif match.group(2):
                parts.append(match.group(2))
            else:
                raise ValueError(f"a lone {token!r} at offset {match.start()} (write {token * 2} "
                                 "for a literal brace)")
            position = match.end()
        if text[position:]:
            parts.append(text[position:].encode())
        merged: list[bytes | str] = []
        for part in parts:
            if merged and isinstance(part, bytes) and isinstance(merged[-1], bytes):
                merged[-1] += part
            else:
                merged.append(part)
        return cls(tuple(merged))


@dataclass(frozen=True)
class Data:
    """The payload a step sends: templated text, fixed bytes (hex), a repeated
    pattern, or N random bytes (from the run's seeded generator, avoiding the
    framing's delimiter)."""

    template: Template | None = None
    fixed: bytes | None = None
    random_size: int = 0

    def render(self, values: dict[str, bytes], rng, forbidden: bytes = b"") -> bytes:
        if self.template is not None:
            return self.template.render(values)
        if self.fixed is not None:
            return self.fixed
        return random_bytes(rng, self.random_size, forbidden)

    @property
    def variables(self) -> tuple[str, ...]:
        return self.template.variables if self.template is not None else ()


def random_bytes(rng, size: int, forbidden: bytes = b"", alphabet: str = "all") -> bytes:
    """``size`` bytes from ``rng`` (random.Random), none of them in ``forbidden``;
    ``alphabet="text"``: letters and digits only; ``"no-whitespace"``: no ASCII whitespace
    either (a word of an inline text protocol)."""
    if alphabet == "text":
        pool = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    else:
        forbidden += WHITESPACE if alphabet == "no-whitespace" else b""
        pool = bytes(b for b in range(256) if b not in forbidden)
    return bytes(pool[i % len(pool)] for i in rng.randbytes(size)) if size else b""


# -- expectations -------------------------------------------------------------------------


@dataclass(frozen=True)
class Expectation:
    """What one reply must be: a list of frames, each matched by ``kind``."""

    kind: str                                   # exact, regex, echo, any
    frames: tuple[object, ...] = ()             # exact: Template|bytes; regex: re.Pattern
    count: int = 1                              # frames in the reply

    def check(self, frames: list[bytes], values: dict[str, bytes], sent: bytes) -> str | None:
        """None when ``frames`` meet the expectation, else what differs (one line)."""
        if len(frames) < self.count:
            return f"{len(frames)} of {self.count} reply frames arrived"
        for index, frame in enumerate(frames[:self.count]):
            where = f"reply frame {index + 1}" if self.count > 1 else "the reply"
            if self.kind == "echo":
                if frame != sent:
                    return f"{where} is not the payload sent ({_diff(sent, frame)})"
            elif self.kind == "exact":
                want = self.frames[index]
                want = want.render(values) if isinstance(want, Template) else want
                if frame != want:
                    return f"{where} differs from {_short(want)} ({_diff(want, frame)})"
            elif self.kind == "regex":
                pattern = self.frames[index]
                if pattern.search(frame) is None:
                    return f"{where} {_short(frame)} does not match /{pattern.pattern.decode(errors='replace')}/"
        return None

    def describe(self) -> str:
        if self.kind == "echo":
            return "the payload sent, back"
        if self.kind == "any":
            return f"{self.count} well-framed frame(s)"
        if self.kind == "regex":
            return " then ".join(f"/{p.pattern.decode(errors='replace')}/" for p in self.frames)
        return " then ".join(_short(f.render({v: b"{" + v.encode() + b"}" for v in f.variables})
                                    if isinstance(f, Template) else f) for f in self.frames)

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(v for f in self.frames if isinstance(f, Template) for v in f.variables)


def _short(data: bytes, width: int = 48) -> str:
    return repr(data[:width]) + ("..." if len(data) > width else "")


def _diff(want: bytes, got: bytes) -> str:
    for offset, (a, b) in enumerate(zip(want, got, strict=False)):
        if a != b:
            return f"first difference at byte {offset}: {_short(want[offset:offset + 8], 8)} " \
                   f"expected, {_short(got[offset:offset + 8], 8)} received"
    return f"{len(got)} bytes received, {len(want)} expected"


@dataclass(frozen=True)
class Capture:
    """Store a part of a reply's first frame as a variable for later exchanges."""

    name: str
    pattern: re.Pattern[bytes]

    def take(self, frame: bytes) -> bytes | None:
        match = self.pattern.search(frame)
        if match is None:
            return None
        return match.group(1) if match.groups() else match.group(0)


@dataclass(frozen=True)
class Exchange:
    name: str
    send: Data
    expect: Expectation
    capture: Capture | None = None
    line: int = 0
    # What the harness answers when it plays the server (client families): given, or
    # the exact expectation, or the request's own payload (expect_echo); None: unknown.
    reply: tuple[Template | bytes, ...] | None = None

    def request_pattern(self) -> re.Pattern[bytes]:
        """A regex that a request payload of this exchange fully matches, with a named
        group per variable (``{n}`` digits; a variable seen twice must repeat): how the
        harness, playing the server, knows which exchange a client's request is."""
        if self.send.template is None:
            if self.send.fixed is not None:
                return re.compile(re.escape(self.send.fixed), re.DOTALL)
            return re.compile(b".{%d}" % self.send.random_size, re.DOTALL)
        pattern = b""
        seen: set[str] = set()
        for part in self.send.template.parts:
            if isinstance(part, bytes):
                pattern += re.escape(part)
            elif part in seen:
                pattern += b"(?P=%s)" % part.encode()
            else:
                seen.add(part)
                body = b"[0-9]+" if part in ("n", "size") else b".*?"
                pattern += b"(?P<%s>%s)" % (part.encode(), body)
        return re.compile(pattern, re.DOTALL)

    def reply_frames(self, values: dict[str, bytes], request: bytes) -> list[bytes] | None:
        """The frames the harness sends back for ``request`` (None: nothing declared).
        ``values``: the variables the connection's requests carried so far (a variable
        never seen is empty)."""
        if self.reply is None:
            return None
        if self.expect.kind == "echo" and not self.reply:
            return [request]
        return [f.render({v: values.get(v, b"") for v in f.variables})
                if isinstance(f, Template) else f for f in self.reply]


@dataclass(frozen=True)
class Sequence:
    """Exchanges run in order on one connection with ``{payload}`` (``size`` bytes of
    ``alphabet``) and ``{size}`` filled in: what binary-integrity and the large-reply
    families need."""

    exchanges: tuple[str, ...]
    size: int
    alphabet: str


@dataclass(frozen=True)
class Properties:
    """What the generic families may rely on; None: not declared."""

    answers_after_fin: bool | None = None
    keeps_connection: bool | None = None
    concurrent: bool | None = None


# What each generic need is, and what to declare to meet it.
NEEDS = {
    "exchange": "at least one [[protocol.exchange]]",
    "answers_after_fin": "properties.answers_after_fin = true",
    "keeps_connection": "properties.keeps_connection = true",
    "concurrent": "properties.concurrent = true",
    "binary": "a [protocol.binary] sequence",
    "large_reply": "a [protocol.large_reply] sequence",
}


@dataclass(frozen=True)
class Protocol:
    """One declared protocol: the profile of servers and clients that speak it."""

    name: str
    framing: Framing
    exchanges: tuple[Exchange, ...]
    properties: Properties = field(default_factory=Properties)
    binary: Sequence | None = None
    large_reply: Sequence | None = None
    description: str = ""
    source: str = ""
    line: int = 0
    version: int = FORMAT_VERSION

    def exchange(self, name: str) -> Exchange:
        for exchange in self.exchanges:
            if exchange.name == name:
                return exchange
        raise KeyError(name)

    def meets(self, need: str) -> bool:
        if need == "exchange":
            return bool(self.exchanges)
        if need in ("binary", "large_reply"):
            return getattr(self, need) is not None
        return getattr(self.properties, need) is True

    def missing(self, needs: tuple[str, ...]) -> str | None:
        """None when every need is met, else what to declare (one phrase)."""
        unmet = [NEEDS[need] for need in needs if not self.meets(need)]
        if not unmet:
            return None
        return f"declare {' and '.join(unmet)} in [[protocol]] {self.name!r} ({self.source})"

    def sequence(self, which: Sequence) -> tuple[Exchange, ...]:
        return tuple(self.exchange(name) for name in which.exchanges)


# -- parsing --------------------------------------------------------------------------------


class _Reader:
    """Parses the ``[[protocol]]`` tables of one file, naming file and line on error."""

    def __init__(self, file: Path, text: str, builtin: bool = False) -> None:
        self.file = file
        self.builtin = builtin   # sockspec's own declarations may use the built-in names
        self.locator = Locator(text)
        self.warnings: list[str] = []

    def error(self, message: str, *path: tuple[str, int], key: str | None = None) -> ProtocolError:
        line = self.locator.line(*path, key=key)
        return ProtocolError(f"{self.file}:{line}: {message}")

    def unknown(self, table: dict, known: tuple[str, ...], where: str, *path: tuple[str, int]) -> None:
        for key in table:
            if key in known:
                continue
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            advice = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
            raise self.error(f"{where}: unknown key {key!r}; {advice}", *path, key=key)

    def protocols(self, tables: object, names_taken: set[str]) -> list[Protocol]:
        if not isinstance(tables, list):
            raise self.error("'protocol' must be an array of tables ([[protocol]])")
        found = []
        for index, table in enumerate(tables):
            found.append(self.protocol(table, index, names_taken))
            names_taken.add(found[-1].name)
        return found

    def protocol(self, table: dict, index: int, names_taken: set[str]) -> Protocol:
        at = ("protocol", index)
        where = f"[[protocol]] #{index + 1}"
        if not isinstance(table, dict):
            raise self.error(f"{where} must be a table", at)
        name = table.get("name")
        if name is None:
            raise self.error(f"{where}: missing key 'name'", at)
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]*", name):
            raise self.error(f"{where}: key 'name' must be a letter then letters, digits, "
                             f"'_', '.', '-' (got {name!r})", at, key="name")
        where = f"[[protocol]] {name!r}"
        if name in BUILTIN_PROFILES and not self.builtin:
            raise self.error(f"{where}: {name!r} is a built-in profile; choose another name",
                             at, key="name")
        if name in names_taken:
            raise self.error(f"{where}: a protocol of that name is already declared", at, key="name")
        self.unknown(table, PROTOCOL_KEYS, where, at)
        version = table.get("version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise self.error(f"{where}: version {version!r}: this sockspec reads protocol "
                             f"declarations of version {FORMAT_VERSION}", at, key="version")
        max_frame = self.integer(table, "max_frame", where, at, default=MAX_FRAME, low=1)
        framing = self.framing(table.get("framing"), where, at, max_frame)
        exchanges_raw = table.get("exchange", [])
        if not isinstance(exchanges_raw, list):
            raise self.error(f"{where}: 'exchange' must be an array of tables "
                             "([[protocol.exchange]])", at, key="exchange")
        exchanges: list[Exchange] = []
        captured: set[str] = set()
        for number, raw in enumerate(exchanges_raw):
            exchange = self.exchange(raw, number, where, at, framing, captured,
                                     {e.name for e in exchanges})
            exchanges.append(exchange)
            if exchange.capture is not None:
                captured.add(exchange.capture.name)
        properties = self.properties(table.get("properties", {}), where, at)
        names = {e.name for e in exchanges}
        binary = self.sequence(table, "binary", where, at, names, framing)
        large = self.sequence(table, "large_reply", where, at, names, framing)
        description = table.get("description", "")
        if not isinstance(description, str):
            raise self.error(f"{where}: key 'description' must be a string", at, key="description")
        return Protocol(name=name, framing=framing, exchanges=tuple(exchanges),
                        properties=properties, binary=binary, large_reply=large,
                        description=description, source=str(self.file),
                        line=self.locator.line(at), version=version)

    def integer(self, table: dict, key: str, where: str, at, *, default=None, low=0, high=None):
        value = table.get(key, default)
        if value is None:
            raise self.error(f"{where}: missing key {key!r}", at)
        if isinstance(value, bool) or not isinstance(value, int) or value < low or \
                (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise self.error(f"{where}: key {key!r} must be a whole number {bound}, got {value!r}",
                             *(at if isinstance(at, list) else [at]), key=key)
        return value

    def framing(self, raw: object, where: str, at, max_frame: int) -> Framing:
        if raw is None:
            raise self.error(f"{where}: missing key 'framing' (one of {', '.join(FRAMING_KINDS)})", at)
        if isinstance(raw, str):
            raw = {"kind": raw}
        if not isinstance(raw, dict):
            raise self.error(f"{where}: key 'framing' must be a string or a table", at, key="framing")
        self.unknown(raw, FRAMING_KEYS, f"{where} framing", at)
        kind = raw.get("kind")
        if kind not in FRAMING_KINDS:
            raise self.error(f"{where}: framing kind must be one of {', '.join(FRAMING_KINDS)}, "
                             f"got {kind!r}", at, key="framing")
        if kind == "line":
            return Framing("line", delimiter=b"\n", max_frame=max_frame)
        if kind == "crlf":
            return Framing("crlf", delimiter=b"\r\n", max_frame=max_frame)
        if kind == "delimiter":
            if "delimiter_hex" in raw:
                try:
                    delimiter = bytes.fromhex(raw["delimiter_hex"])
                except (TypeError, ValueError):
                    raise self.error(f"{where}: framing delimiter_hex is not hex: "
                                     f"{raw['delimiter_hex']!r}", at, key="framing") from None
            elif isinstance(raw.get("delimiter"), str):
                delimiter = raw["delimiter"].encode()
            else:
                raise self.error(f"{where}: framing kind 'delimiter' needs 'delimiter' "
                                 "(text) or 'delimiter_hex'", at, key="framing")
            if not delimiter:
                raise self.error(f"{where}: the framing delimiter is empty", at, key="framing")
            return Framing("delimiter", delimiter=delimiter, max_frame=max_frame)
        if kind == "length":
            width = raw.get("width")
            if width not in (1, 2, 4, 8):
                raise self.error(f"{where}: framing kind 'length' needs width = 1, 2, 4 or 8, "
                                 f"got {width!r}", at, key="framing")
            endian = raw.get("endian", "big")
            if endian not in ("big", "little"):
                raise self.error(f"{where}: framing endian must be \"big\" or \"little\", "
                                 f"got {endian!r}", at, key="framing")
            counts = raw.get("counts_header", False)
            if not isinstance(counts, bool):
                raise self.error(f"{where}: framing counts_header must be true or false",
                                 at, key="framing")
            return Framing("length", width=width, endian=endian, counts_header=counts,
                           max_frame=max_frame)
        if kind == "fixed":
            size = raw.get("size")
            if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= max_frame:
                raise self.error(f"{where}: framing kind 'fixed' needs size, a whole number "
                                 f"from 1 to {max_frame}, got {size!r}", at, key="framing")
            return Framing("fixed", size=size, max_frame=max_frame)
        return Framing("close", max_frame=max_frame)

    def exchange(self, raw: object, number: int, where: str, at, framing: Framing,
                 captured: set[str], taken: set[str]) -> Exchange:
        path = (at, ("exchange", number))
        here = f"{where} exchange #{number + 1}"
        if not isinstance(raw, dict):
            raise self.error(f"{here} must be a table", *path)
        name = raw.get("name", f"exchange{number + 1}")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise self.error(f"{here}: key 'name' must be letters, digits, '_', '.', '-' "
                             f"(got {name!r})", *path, key="name")
        if name in taken:
            raise self.error(f"{here}: exchange name {name!r} is used twice", *path, key="name")
        here = f"{where} exchange {name!r}"
        self.unknown(raw, EXCHANGE_KEYS, here, *path)
        known = set(BUILTIN_VARIABLES) | captured
        send = self.data(raw, here, path, framing, known)
        expect = self.expectation(raw, here, path, framing, known)
        capture = None
        if "capture" in raw:
            spec = raw["capture"]
            if not isinstance(spec, dict) or set(spec) != {"name", "regex"} or \
                    not isinstance(spec.get("name"), str) or \
                    not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", spec["name"]) or \
                    spec["name"] in BUILTIN_VARIABLES:
                raise self.error(f"{here}: capture must be {{ name = \"var\", regex = \"...\" }} "
                                 f"with a variable name other than {', '.join(BUILTIN_VARIABLES)}",
                                 *path, key="capture")
            capture = Capture(spec["name"], self.regex(spec["regex"], here, path, "capture"))
        reply = self.reply(raw, here, path, framing, expect, known)
        return Exchange(name=name, send=send, expect=expect, capture=capture,
                        line=self.locator.line(*path), reply=reply)

    def reply(self, raw: dict, here: str, path, framing: Framing, expect: Expectation,
              known: set[str]) -> tuple[Template | bytes, ...] | None:
        """What the harness answers when it plays the server: ``reply``/``reply_hex``
        (a payload or a list of them), else the exact expectation, else the request's
        payload for expect_echo (the empty tuple), else None."""
        given = [k for k in ("reply", "reply_hex") if k in raw]
        if len(given) > 1:
            raise self.error(f"{here}: give reply or reply_hex, not both", *path, key="reply")
        if given:
            key = given[0]
            values = raw[key] if isinstance(raw[key], list) else [raw[key]]
            frames: list[Template | bytes] = []
            for item in values:
                if key == "reply_hex":
                    frames.append(self.hex(item, here, path, key))
                    continue
                template = self.template(item, here, path, key, known)
                frames.append(template if template.variables else template.render({}))
            for frame in frames:
                if isinstance(frame, bytes):
                    self.check_payload(frame, framing, here, path, key)
            return tuple(frames)
        if expect.kind == "echo":
            return ()
        if expect.kind == "exact":
            return expect.frames
        return None

    def data(self, raw: dict, here: str, path, framing: Framing, known: set[str]) -> Data:
        given = [k for k in ("send", "send_hex", "send_repeat", "send_random") if k in raw]
        if len(given) != 1:
            raise self.error(f"{here}: give exactly one of send, send_hex, send_repeat, "
                             f"send_random (got {', '.join(given) or 'none'})", *path)
        key = given[0]
        value = raw[key]
        data: Data
        if key == "send":
            data = Data(template=self.template(value, here, path, key, known))
        elif key == "send_hex":
            data = Data(fixed=self.hex(value, here, path, key))
        elif key == "send_repeat":
            if not isinstance(value, dict) or set(value) != {"pattern", "count"} or \
                    not isinstance(value["pattern"], str) or not value["pattern"] or \
                    isinstance(value["count"], bool) or not isinstance(value["count"], int) or \
                    not 1 <= value["count"] <= framing.max_frame:
                raise self.error(f"{here}: send_repeat must be {{ pattern = \"text\", count = N }} "
                                 f"with N from 1 to {framing.max_frame}", *path, key=key)
            data = Data(fixed=value["pattern"].encode() * value["count"])
        else:
            if isinstance(value, bool) or not isinstance(value, int) or \
                    not 1 <= value <= framing.max_frame:
                raise self.error(f"{here}: send_random must be a byte count from 1 to "
                                 f"{framing.max_frame}, got {value!r}", *path, key=key)
            data = Data(random_size=value)
        if data.fixed is not None:
            self.check_payload(data.fixed, framing, here, path, key)
        if data.template is not None:
            literal = b"".join(p for p in data.template.parts if isinstance(p, bytes))
            self.check_payload(literal, framing, here, path, key, exact_size=not data.variables)
        return data

    def check_payload(self, payload: bytes, framing: Framing, here: str, path, key: str,
                      exact_size: bool = True) -> None:
        bad = framing.forbidden()
        if bad and bad in payload:
            raise self.error(f"{here}: {key} holds the framing's {framing.describe_delimiter()}; "
                             "the framing adds it (write the payload only)", *path, key=key)
        if framing.kind == "fixed" and exact_size and len(payload) != framing.size:
            raise self.error(f"{here}: {key} is {len(payload)} bytes; the framing's messages "
                             f"are {framing.size}", *path, key=key)

    def template(self, value: object, here: str, path, key: str, known: set[str]) -> Template:
        if not isinstance(value, str):
            raise self.error(f"{here}: key {key!r} must be a string", *path, key=key)
        try:
            template = Template.parse(value)
        except ValueError as exc:
            raise self.error(f"{here}: {key}: {exc}", *path, key=key) from None
        for variable in template.variables:
            if variable not in known:
                raise self.error(f"{here}: {key} uses undefined variable {{{variable}}} "
                                 f"(known: {', '.join(sorted(known))})", *path, key=key)
        return template

    def hex(self, value: object, here: str, path, key: str) -> bytes:
        try:
            return bytes.fromhex(value) if isinstance(value, str) else _raise()
        except (TypeError, ValueError):
            raise self.error(f"{here}: {key} must be hex digits (spaces allowed), got {value!r}",
                             *path, key=key) from None

    def regex(self, value: object, here: str, path, key: str) -> re.Pattern[bytes]:
        if not isinstance(value, str):
            raise self.error(f"{here}: {key} regex must be a string", *path, key=key)
        try:
            return re.compile(value.encode())
        except re.error as exc:
            raise self.error(f"{here}: bad {key} regex {value!r}: {exc}", *path, key=key) from None

    def expectation(self, raw: dict, here: str, path, framing: Framing,
                    known: set[str]) -> Expectation:
        given = [k for k in ("expect", "expect_hex", "expect_regex", "expect_echo", "expect_any")
                 if k in raw]
        if len(given) != 1:
            raise self.error(f"{here}: give exactly one of expect, expect_hex, expect_regex, "
                             f"expect_echo, expect_any (got {', '.join(given) or 'none'})", *path)
        key = given[0]
        value = raw[key]
        if key in ("expect_echo", "expect_any"):
            if key == "expect_echo" and value is not True:
                raise self.error(f"{here}: expect_echo must be true", *path, key=key)
            if key == "expect_any":
                if value is True:
                    value = 1
                if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
                    raise self.error(f"{here}: expect_any must be true or a frame count from "
                                     "1 to 1000", *path, key=key)
                return Expectation("any", count=value)
            return Expectation("echo")
        values = value if isinstance(value, list) else [value]
        if not values:
            raise self.error(f"{here}: {key} is an empty list", *path, key=key)
        frames: list[object] = []
        for item in values:
            if key == "expect":
                template = self.template(item, here, path, key, known)
                frames.append(template if template.variables else template.render({}))
            elif key == "expect_hex":
                frames.append(self.hex(item, here, path, key))
            else:
                frames.append(self.regex(item, here, path, key))
        for frame in frames:
            if isinstance(frame, bytes) and key != "expect_regex":
                self.check_payload(frame, framing, here, path, key)
        kind = "regex" if key == "expect_regex" else "exact"
        return Expectation(kind, frames=tuple(frames), count=len(frames))

    def properties(self, raw: object, where: str, at) -> Properties:
        if not isinstance(raw, dict):
            raise self.error(f"{where}: 'properties' must be a table", at, key="properties")
        self.unknown(raw, PROPERTY_KEYS, f"{where} properties", at, ("properties", 0))
        for key, value in raw.items():
            if not isinstance(value, bool):
                raise self.error(f"{where}: properties.{key} must be true or false, got {value!r}",
                                 at, ("properties", 0), key=key)
        return Properties(**raw)

    def sequence(self, table: dict, key: str, where: str, at, names: set[str],
                 framing: Framing) -> Sequence | None:
        raw = table.get(key)
        if raw is None:
            return None
        path = (at, (key, 0))
        if not isinstance(raw, dict):
            raise self.error(f"{where}: {key!r} must be a table", at, key=key)
        self.unknown(raw, SEQUENCE_KEYS, f"{where} {key}", *path)
        exchanges = raw.get("exchanges")
        if isinstance(exchanges, str):
            exchanges = [exchanges]
        if not isinstance(exchanges, list) or not exchanges or \
                not all(isinstance(e, str) for e in exchanges):
            raise self.error(f"{where}: {key}.exchanges must name one or more exchanges",
                             *path, key="exchanges")
        for name in exchanges:
            if name not in names:
                close = difflib.get_close_matches(name, sorted(names), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise self.error(f"{where}: {key}.exchanges names no exchange {name!r}{hint}",
                                 *path, key="exchanges")
        # 8 MiB: more than loopback TCP buffers hold (a server ignoring send()'s count
        # of a 4 MiB reply could still pass partial-writes).
        default = 64 * 1024 if key == "binary" else 8 * 1024 * 1024
        size = self.integer(raw, "size", f"{where} {key}", [*path], default=default, low=1,
                            high=framing.max_frame)
        alphabet = raw.get("alphabet", "all" if framing.kind in ("length", "fixed", "close")
                           else "no-delimiter")
        if alphabet not in ALPHABETS:
            raise self.error(f"{where}: {key}.alphabet must be one of {', '.join(ALPHABETS)}, "
                             f"got {alphabet!r}", *path, key="alphabet")
        if alphabet == "all" and framing.forbidden():
            raise self.error(f"{where}: {key}.alphabet \"all\" would put the framing's "
                             f"{framing.describe_delimiter()} inside a payload; use "
                             "\"no-delimiter\" or \"text\"", *path, key="alphabet")
        return Sequence(tuple(exchanges), size, alphabet)


def _raise():
    raise ValueError


def parse_protocols(file: Path, text: str, data: dict | None = None,
                    names_taken: set[str] | None = None, builtin: bool = False) -> list[Protocol]:
    """The ``[[protocol]]`` tables of one TOML file (already parsed as ``data``, or
    parsed here); ProtocolError naming file and line."""
    if data is None:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ProtocolError(f"{file}: not valid TOML: {exc}") from None
    reader = _Reader(file, text, builtin)
    return reader.protocols(data.get("protocol", []), set(names_taken or ()))


def load_protocol_file(path: Path, names_taken: set[str] | None = None) -> list[Protocol]:
    """Every ``[[protocol]]`` of a file of its own; ProtocolError when it cannot be read."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"{path}: cannot read the protocol file: "
                            f"{getattr(exc, 'strerror', None) or exc}") from None
    protocols = parse_protocols(path, text, names_taken=names_taken)
    if not protocols:
        raise ProtocolError(f"{path}: declares no [[protocol]]")
    return protocols
