"""The scenario-file format, version 1: a small line language (README, "Scenario files").

A file is read whole and checked before anything runs: every mistake is one
``FILE:LINE: ...`` line (ScenarioFileError, exit 2) naming the step. The result is a
``ScenarioFile``: the header (family, description, protocol, ...) and the actors, each
a list of ``Step``. Running it is sockspec.scenario_files.steps.

    sockspec 1
    family kv-store
    behaviour a value SET is the value GET returns
    hint store the value under its key and return it unchanged
    description SET then GET on one connection returns the value
    protocol kv from ../protocol.toml

    connect
    send "SET colour blue"
    expect "+OK"
    send "GET colour"
    expect "$blue"

With ``role client`` the file plays the server for a client under test: ``listen``,
``accept`` instead of ``connect``, and the client's verdict (``client succeeds``, ...).

One command per line; ``#`` starts a comment; words are split on whitespace; a
string is in double quotes with the escapes ``\\\\ \\" \\n \\r \\t \\0 \\xHH`` and the
protocol templates ``{name}`` (a variable) and ``{hex:0d 0a}``. A line ending with
``{`` opens a block (``repeat``, ``actor``) that a line ``}`` closes.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from sockspec.errors import UsageError
from sockspec.protocol.declared import (
    BUILTIN_PROFILES,
    Framing,
    Protocol,
    ProtocolError,
    Template,
    load_protocol_file,
    random_bytes,
)

FORMAT_VERSION = 1
SUFFIX = ".sockspec"
ROLES = ("server", "client")
TRANSPORT_NAMES = ("tcp", "tcp6", "unix")
DEFAULT_TIMEOUT = 5.0
MAX_SECONDS = 3600.0
MAX_BYTES = 64 * 1024 * 1024
MAX_REPEAT = 1_000_000
MAX_COPIES = 256
DEFAULT_CONNECTION = "c"
MAIN_ACTOR = "main"

HEADER_KEYS = ("sockspec", "id", "family", "behaviour", "hint", "description", "level",
               "reason", "protocol", "role", "transports", "timeout", "fresh-server")
TEXT_KEYS = ("description", "behaviour", "hint", "reason")
STEPS = ("connect", "send", "recv", "expect", "capture", "set", "shutdown", "close", "reset",
         "pause", "barrier", "repeat", "actor", "listen", "accept", "client")
# Step words no connection or variable may be named (listen, accept and client came later:
# a name such as `client` stays usable, as it was).
RESERVED_STEPS = STEPS[:13]
# Steps that wait for something: they take a trailing ``timeout S``.
WAITING = ("connect", "send", "recv", "expect", "capture", "barrier", "accept")
# Words with a meaning inside a step: no connection or variable may be named so.
KEYWORDS = ("raw", "hex", "repeat", "random", "file", "frame", "until", "sent", "regex",
            "length", "eof", "rst", "silence", "timeout", "as", "from", "dribble")
# Steps of one role only: a server file connects to the server under test; a client
# file (role client) plays the server for a client under test.
ROLE_STEPS = {
    "connect": ("server", "a client file (role client) plays the server: it does not connect, "
                "it takes the client's connections with `accept [NAME]`"),
    "accept": ("client", "a server file (role server) connects to the server under test "
               "(`connect [NAME]`); `accept` is for role client, where the harness plays the "
               "server"),
    "listen": ("client", "a server file (role server) has no listener of its own; `listen` is "
               "for role client, where the harness plays the server"),
    "client": ("client", "a server file (role server) judges a server; `client ...` judges the "
               "client under test of a role client file"),
}
CLIENT_VERDICTS = ("succeeds", "fails", "finishes", "reported")
DEFAULT_BACKLOG = 16
MAX_BACKLOG = 4096
DRIBBLE_PAUSE_S = 0.001   # `send dribble`: between one-byte segments (unscaled)
# Steps a Unix stream socket cannot do: it has no RST.
TCP_ONLY = {"reset": "a Unix socket has no RST (SO_LINGER {1, 0} only closes it)",
            "expect rst": "a Unix socket has no RST to receive"}

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FAMILY = re.compile(r"[a-z][a-z0-9-]*")
_HEXWORD = re.compile(r"[0-9A-Fa-f]+")


class ScenarioFileError(UsageError):
    """A scenario file that cannot be used: one line, ``FILE:LINE: ...``, exit 2."""


# -- what a file holds ----------------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """A part of the bytes a step sends or expects: templated text, fixed bytes, or
    ``size`` random bytes."""

    template: Template | None = None
    fixed: bytes | None = None
    random_size: int = 0

    def render(self, values: dict[str, bytes], rng, forbidden: bytes) -> bytes:
        if self.template is not None:
            return self.template.render(values)
        if self.fixed is not None:
            return self.fixed
        return random_bytes(rng, self.random_size, forbidden)


@dataclass(frozen=True)
class Data:
    pieces: tuple[Piece, ...]

    def render(self, values: dict[str, bytes], rng=None, forbidden: bytes = b"") -> bytes:
        return b"".join(p.render(values, rng, forbidden) for p in self.pieces)

    @property
    def literal(self) -> bytes | None:
        """The bytes when no variable or random piece is in it, else None."""
        if any(p.random_size or (p.template is not None and p.template.variables)
               for p in self.pieces):
            return None
        return self.render({})


@dataclass(frozen=True)
class Step:
    """One line of a scenario (a block's line holds its steps in ``body``)."""

    line: int
    text: str                    # the line as written, trimmed
    verb: str                    # STEPS
    conn: str = ""               # the connection it acts on
    name: str = ""               # connect: the connection; barrier: its name; set/capture: var
    mode: str = ""               # recv/expect: which form
    data: Data | None = None     # send, set, expect exact
    raw: bool = False            # send raw: no framing
    count: int = 0               # recv N, expect length N, repeat N
    pattern: re.Pattern[bytes] | None = None
    seconds: float = 0.0         # pause, expect silence
    timeout: float | None = None
    var: str = ""                # repeat ... as VAR
    body: tuple[Step, ...] = ()
    dribble: bool = False        # send dribble: one byte per segment


@dataclass(frozen=True)
class Actor:
    name: str
    copies: int
    var: str                     # actor NAME * N as VAR: the copy's number, from 1
    steps: tuple[Step, ...]
    line: int


@dataclass(frozen=True)
class ScenarioFile:
    path: Path
    id: str
    family: str
    behaviour: str
    hint: str
    description: str
    protocol_name: str
    protocol: Protocol | None    # None: echo or http (no framing: bytes as written)
    level: str = "MUST"
    reason: str = ""
    role: str = "server"
    transports: tuple[str, ...] = TRANSPORT_NAMES
    timeout: float = DEFAULT_TIMEOUT
    fresh_server: bool = False
    actors: tuple[Actor, ...] = ()
    barriers: dict[str, int] = field(default_factory=dict)   # name -> parties
    version: int = FORMAT_VERSION
    # role client: the harness's listener (`listen [backlog N] [accept-after S]`)
    backlog: int = DEFAULT_BACKLOG
    accept_after: float = 0.0

    @property
    def framing(self) -> Framing | None:
        return self.protocol.framing if self.protocol is not None else None


# -- reading words --------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    text: str          # a word as written, or a string's template source (escapes resolved)
    quoted: bool = False
    raw: str = ""      # a string's content with only \" resolved (for regexes)
    bad_escape: str = ""   # an escape text cannot have (fine in a regex)

    def word(self, value: str) -> bool:
        return not self.quoted and self.text == value

    def shown(self) -> str:
        return f'"{self.raw}"' if self.quoted else self.text


_ESCAPES = {"n": "{hex:0a}", "r": "{hex:0d}", "t": "{hex:09}", "0": "{hex:00}", "\\": "\\",
            '"': '"'}


def tokenize(text: str, fail) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
            continue
        if char == "#":
            break
        if char != '"':
            start = i
            while i < n and not text[i].isspace():
                if text[i] == '"':
                    fail(f"a quote inside the word {text[start:].split()[0]!r}: "
                         "put a space before the string")
                i += 1
            tokens.append(Token(text[start:i]))
            continue
        i += 1
        value, raw = [], []
        bad = ""
        while True:
            if i >= n:
                fail("a string without its closing quote")
            char = text[i]
            if char == '"':
                i += 1
                break
            if char == "\\":
                if i + 1 >= n:
                    fail("a string ends with a lone backslash")
                nxt = text[i + 1]
                if nxt == "x":
                    digits = text[i + 2:i + 4]
                    if not re.fullmatch(r"[0-9A-Fa-f]{2}", digits):
                        fail(f"\\x needs two hex digits, got {text[i:i + 4]!r}")
                    value.append(f"{{hex:{digits}}}")
                    raw.append(text[i:i + 4])
                    i += 4
                    continue
                if nxt not in _ESCAPES:
                    bad = bad or text[i:i + 2]
                    value.append(text[i:i + 2])
                    raw.append(text[i:i + 2])
                    i += 2
                    continue
                value.append(_ESCAPES[nxt])
                raw.append('"' if nxt == '"' else text[i:i + 2])
                i += 2
                continue
            value.append(char)
            raw.append(char)
            i += 1
        if i < n and not text[i].isspace():
            fail("a string must be followed by a space or the end of the line")
        tokens.append(Token("".join(value), quoted=True, raw="".join(raw), bad_escape=bad))
    return tokens


def parse_seconds(text: str) -> float | None:
    """``2``, ``2.5``, ``2s`` or ``500ms`` as seconds; None when it is not a duration."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(ms|s)?", text)
    if not match:
        return None
    value = float(match.group(1))
    return value / 1000 if match.group(2) == "ms" else value


# -- the parser ----------------------------------------------------------------------------


@dataclass
class _Line:
    number: int
    text: str
    tokens: list[Token]


@dataclass
class _ActorState:
    """What the parser knows so far about one actor, in file order."""

    name: str
    conns: list[str] = field(default_factory=list)
    received: set[str] = field(default_factory=set)
    variables: set[str] = field(default_factory=set)
    barriers: dict[str, int] = field(default_factory=dict)   # name -> first line


class Parser:
    def __init__(self, path: Path, text: str, shown: str) -> None:
        self.path = path
        self.shown = shown
        self.lines: list[_Line] = []
        self.position = 0
        self.line = 0
        self.step = ""
        for number, content in enumerate(text.splitlines(), start=1):
            self.line = number
            first = content.split(None, 1)[0] if content.strip() else ""
            if first in TEXT_KEYS:   # the rest of the line is text, as written
                tokens = [Token(first), *([Token(content.split(None, 1)[1].strip())]
                                          if len(content.split(None, 1)) > 1 else [])]
            else:
                tokens = tokenize(content, self.fail)
            if tokens:
                self.lines.append(_Line(number, content.strip(), tokens))
        self.header: dict[str, tuple[int, str, list[Token]]] = {}
        self.protocol: Protocol | None = None
        self.transports: tuple[str, ...] = TRANSPORT_NAMES
        self.role = "server"
        self.listening: tuple[int, float] = (DEFAULT_BACKLOG, 0.0)   # role client: listen

    def fail(self, message: str, line: int | None = None):
        where = f"step {self.step!r}: " if self.step else ""
        raise ScenarioFileError(f"{self.shown}:{line or self.line}: {where}{message}")

    # -- whole file

    def parse(self) -> ScenarioFile:
        if not self.lines:
            self.line = 1
            self.fail(f"empty: a scenario file starts with `sockspec {FORMAT_VERSION}`")
        first = self.lines[0]
        self.line = first.number
        if not first.tokens[0].word("sockspec") or len(first.tokens) != 2:
            self.fail(f"a scenario file starts with `sockspec {FORMAT_VERSION}` (the format "
                      f"version), not {first.text!r}")
        version = first.tokens[1].text
        if version != str(FORMAT_VERSION):
            self.fail(f"format version {version}: this sockspec reads scenario files of "
                      f"version {FORMAT_VERSION}")
        self.position = 1
        self.read_header(first.number)
        steps: list[Step] = []
        actors: list[Actor] = []
        main = _ActorState(MAIN_ACTOR)
        states = [main]
        while self.position < len(self.lines):
            line = self.lines[self.position]
            self.line = line.number
            head = line.tokens[0]
            if head.word("actor"):
                actor, state = self.actor(line, {a.name for a in actors})
                actors.append(actor)
                states.append(state)
                continue
            if not head.quoted and head.text in HEADER_KEYS:
                self.fail(f"header line {head.text!r} after the first step: the header "
                          "(family, description, protocol, ...) comes first")
            if head.word("listen"):
                self.listen(line, first_step=not steps and not actors)
                continue
            steps.append(self.statement(main, top=True))
        if steps:
            actors.insert(0, Actor(MAIN_ACTOR, 1, "", tuple(steps), steps[0].line))
        if not actors:
            self.line = first.number
            opener = "accept" if self.role == "client" else "connect"
            self.fail(f"no steps: a scenario needs at least `{opener}` and one more step")
        if self.role == "client":
            self.client_verdict(steps)
        barriers = self.barrier_parties(actors, states)
        header = self.header
        scenario_id = self.word("id") or re.sub(r"[^A-Za-z0-9_]", "_", self.path.stem)
        return ScenarioFile(
            path=self.path, id=scenario_id,
            family=self.word("family"), behaviour=header.get("behaviour", (0, ""))[1],
            hint=header.get("hint", (0, ""))[1], description=header["description"][1],
            protocol_name=header["protocol"][2][0].text, protocol=self.protocol,
            level=self.word("level", "MUST"), reason=header.get("reason", (0, ""))[1],
            role=self.word("role", "server"), transports=self.transports,
            timeout=self.header_timeout, fresh_server="fresh-server" in header,
            actors=tuple(actors), barriers=barriers,
            backlog=self.listening[0], accept_after=self.listening[1])

    def listen(self, line: _Line, first_step: bool) -> None:
        """`listen [backlog N] [accept-after S]`: the harness's listener (role client)."""
        self.step = "listen"
        self.role_allows("listen")
        if not first_step:
            self.fail("`listen` comes before every other step and actor (the harness listens, "
                      "then starts the client)")
        tokens = list(line.tokens[1:])
        form = "listen [backlog N] [accept-after S]"
        backlog, after = DEFAULT_BACKLOG, 0.0
        seen = set()
        while tokens:
            word = tokens.pop(0)
            if word.quoted or word.text not in ("backlog", "accept-after") or word.text in seen:
                self.fail(f"unexpected {word.shown()!r}: write {form}")
            seen.add(word.text)
            if word.text == "backlog":
                backlog = self.integer(tokens.pop(0) if tokens else None, "the backlog", 0,
                                       MAX_BACKLOG)
            else:
                after = self.seconds(tokens[:1], "accept-after")
                tokens.pop(0)
        self.listening = (backlog, after)
        self.position += 1
        self.step = ""

    def client_verdict(self, steps: list[Step]) -> None:
        """A client file judges its client: `client succeeds` or `client fails`, once."""
        ends = [s for s in steps if s.verb == "client" and s.mode in ("succeeds", "fails")]
        self.step = ""
        if not ends:
            self.fail("a client file (role client) judges its client: end it with "
                      "`client succeeds` or `client fails`", line=self.lines[-1].number)
        if len(ends) > 1:
            self.step = "client"
            self.fail(f"the client's verdict is given once (`{ends[0].text}` on line "
                      f"{ends[0].line})", line=ends[1].line)

    def role_allows(self, verb: str) -> None:
        found = ROLE_STEPS.get(verb)
        if found is not None and found[0] != self.role:
            self.fail(found[1])

    def read_header(self, start: int) -> None:
        while self.position < len(self.lines):
            line = self.lines[self.position]
            head = line.tokens[0]
            if head.quoted or head.text not in HEADER_KEYS:
                break
            self.line = line.number
            key = head.text
            if key == "sockspec":
                self.fail("`sockspec N` is the first line only")
            if key in self.header:
                self.fail(f"header {key!r} given twice (first on line {self.header[key][0]})")
            rest = line.text[len(key):].strip()
            self.header[key] = (line.number, rest, line.tokens[1:])
            self.position += 1
        for key in ("family", "description", "protocol"):
            if key not in self.header:
                self.fail(f"missing header line `{key} ...` (the header needs family, "
                          "description and protocol)", line=start)
        self.check_header()

    def word(self, key: str, default: str = "") -> str:
        """A header key's one-word value."""
        found = self.header.get(key)
        return found[2][0].text if found else default

    def check_header(self) -> None:
        header = self.header

        def at(key: str) -> int:
            self.line = header[key][0]
            return self.line

        for key in ("description", "behaviour", "hint", "reason", "id", "family", "level",
                    "role"):
            if key in header and not header[key][1]:
                at(key)
                self.fail(f"header {key!r} needs a value")
        for key in ("id", "family", "level", "role"):
            if key in header and (len(header[key][2]) != 1 or header[key][2][0].quoted):
                at(key)
                self.fail(f"header {key!r} takes one word, got {header[key][1]!r}")
        if "id" in header:
            at("id")
            if not re.fullmatch(r"[A-Za-z0-9_]+", self.word("id")):
                self.fail(f"id must be letters, digits and '_', got {self.word('id')!r}")
        elif not re.fullmatch(r"[A-Za-z0-9_]+", re.sub(r"[-.]", "_", self.path.stem)):
            self.line = 1
            self.fail(f"the file name {self.path.name!r} makes no scenario id: give an "
                      "`id NAME` line (letters, digits and '_')")
        at("family")
        family = self.word("family")
        if not _FAMILY.fullmatch(family):
            self.fail(f"family must be lower-case letters, digits and '-', starting with a "
                      f"letter, got {family!r}")
        if "role" in header:
            at("role")
            role = self.word("role")
            if role not in ROLES:
                self.fail(f"role must be server or client, got {role!r}")
            self.role = role
        at("family")
        if self.role == "server" and family.startswith("client-"):
            self.fail(f"family {family!r}: a family starting with 'client-' judges clients; "
                      "add the header line `role client` (the harness plays the server for a "
                      "client under test), or name a server family")
        if self.role == "client" and not family.startswith("client-"):
            self.fail(f"family {family!r}: a client file (role client) judges clients: its "
                      "family starts with 'client-' (client-basic, ..., or a new one such as "
                      "client-kv)")
        if self.role == "client" and "fresh-server" in header:
            at("fresh-server")
            self.fail("fresh-server: a client file (role client) has no server under test (the "
                      "harness plays the server)")
        builtin = builtin_families().get(family)
        given = [k for k in ("behaviour", "hint") if k in header]
        if builtin is not None and given:
            at(given[0])
            self.fail(f"family {family!r} is built in: its behaviour and hint are sockspec's "
                      f"(drop the `{given[0]}` line)")
        if builtin is None and len(given) < 2:
            self.fail(f"family {family!r} is not built in: a new family needs a `behaviour` "
                      "line (what it checks) and a `hint` line (what fixes a failure)")
        if "level" in header:
            at("level")
            if self.word("level") not in ("MUST", "SHOULD"):
                self.fail(f"level must be MUST or SHOULD, got {self.word('level')!r}")
        if "transports" in header:
            at("transports")
            names = [t.text for t in header["transports"][2]]
            bad = [n for n in names if n not in TRANSPORT_NAMES]
            if not names or bad:
                self.fail(f"transports: name one or more of tcp, tcp6, unix "
                          f"(got {' '.join(names) or 'none'})")
            self.transports = tuple(t for t in TRANSPORT_NAMES if t in names)
        self.header_timeout = DEFAULT_TIMEOUT
        if "timeout" in header:
            at("timeout")
            self.header_timeout = self.seconds(header["timeout"][2], "timeout")
        if "fresh-server" in header and header["fresh-server"][2]:
            at("fresh-server")
            self.fail("fresh-server takes no value")
        at("protocol")
        self.protocol = self.read_protocol(header["protocol"][2])
        if self.role == "client" and self.protocol is None:
            self.fail(f"protocol {self.word('protocol')}: a client file (role client) plays a "
                      "declared protocol's server (`protocol NAME from FILE`); echo and http "
                      "clients have the built-in client families")

    def read_protocol(self, tokens: list[Token]) -> Protocol | None:
        if not tokens or tokens[0].quoted:
            self.fail("protocol needs a name: echo, http, or NAME from FILE")
        name = tokens[0].text
        if len(tokens) == 1:
            if name in BUILTIN_PROFILES:
                return None
            self.fail(f"unknown protocol {name!r}: echo and http are built in; a declared "
                      f"protocol names its file: `protocol {name} from FILE`")
        if len(tokens) != 3 or not tokens[1].word("from"):
            self.fail("write `protocol NAME` (echo, http) or `protocol NAME from FILE`")
        if name in BUILTIN_PROFILES:
            self.fail(f"protocol {name!r} is built in: write `protocol {name}` alone")
        file = (self.path.parent / tokens[2].text)
        try:
            declared = load_protocol_file(file)
        except ProtocolError as exc:
            self.fail(f"protocol {name} from {tokens[2].text}: {exc}")
        found = {p.name: p for p in declared}
        if name not in found:
            self.fail(f"unknown protocol {name!r}: {tokens[2].text} declares "
                      f"{', '.join(sorted(found))}")
        return found[name]

    # -- blocks and steps

    def actor(self, line: _Line, taken: set[str]) -> tuple[Actor, _ActorState]:
        self.step = "actor"
        tokens = line.tokens[1:]
        if not tokens or tokens[-1].text != "{" or tokens[-1].quoted:
            self.fail("write `actor NAME {` (or `actor NAME * N as VAR {`), its steps, then `}`")
        tokens = tokens[:-1]
        name = self.name(tokens.pop(0) if tokens else None, "an actor")
        if name in taken or name == MAIN_ACTOR:
            self.fail(f"actor name {name!r} is taken ('main' is the steps outside any actor)")
        copies, var = 1, ""
        if tokens and tokens[0].word("*"):
            tokens.pop(0)
            copies = self.integer(tokens.pop(0) if tokens else None, "the number of copies",
                                  1, MAX_COPIES)
        if tokens and tokens[0].word("as"):
            tokens.pop(0)
            var = self.name(tokens.pop(0) if tokens else None, "a variable")
        if tokens:
            self.fail(f"unexpected {tokens[0].shown()!r} in `actor NAME [* N] [as VAR] {{`")
        state = _ActorState(name)
        if var:
            state.variables.add(var)
        self.step = ""
        start = line.number
        self.position += 1
        steps = self.block(state, start)
        if not steps:
            self.line = start
            self.fail(f"actor {name!r} has no steps")
        return Actor(name, copies, var, tuple(steps), start), state

    def block(self, state: _ActorState, start: int) -> list[Step]:
        steps = []
        while True:
            if self.position >= len(self.lines):
                self.step = ""
                self.fail("this block is never closed: add a line `}`", line=start)
            line = self.lines[self.position]
            self.line = line.number
            if line.tokens[0].word("}"):
                if len(line.tokens) > 1:
                    self.fail("`}` stands alone on its line")
                self.position += 1
                return steps
            steps.append(self.statement(state, top=False))

    def statement(self, state: _ActorState, top: bool) -> Step:
        line = self.lines[self.position]
        self.line = line.number
        head = line.tokens[0]
        verb = head.text
        self.step = verb if not head.quoted else ""
        if head.quoted or verb not in STEPS:
            self.step = ""
            if verb == "}":
                self.fail("a `}` with no open block")
            close = difflib.get_close_matches(verb, STEPS + HEADER_KEYS, n=1, cutoff=0.6)
            advice = f"; did you mean {close[0]!r}?" if close else f" (steps: {', '.join(STEPS)})"
            self.step = verb
            self.fail(f"unknown step{advice}")
        if verb == "actor":
            self.fail("an actor block stands at the top level, not inside another block")
        self.role_allows(verb)
        if verb == "listen":
            self.fail("`listen` comes before every other step and actor, outside any block")
        if verb == "client" and (not top or state.name != MAIN_ACTOR):
            self.fail("the client's verdict is a step of the main steps (outside any actor "
                      "or repeat block)")
        tokens = list(line.tokens[1:])
        timeout = None
        for index, token in enumerate(tokens):
            if token.word("timeout"):
                if verb not in WAITING:
                    self.fail(f"{verb} waits for nothing: it takes no timeout")
                if index != len(tokens) - 2:
                    self.fail("`timeout S` ends the line")
                timeout = self.seconds(tokens[index + 1:], "timeout")
                tokens = tokens[:index]
                break
        self.position += 1
        base = dict(line=line.number, text=line.text, verb=verb, timeout=timeout)
        step = getattr(self, "step_" + verb)(tokens, state, base)
        return step

    # -- one method per step

    def step_connect(self, tokens, state, base) -> Step:
        return self.new_connection(tokens, state, base, "connect [NAME]")

    def step_accept(self, tokens, state, base) -> Step:
        return self.new_connection(tokens, state, base, "accept [NAME]")

    def new_connection(self, tokens, state, base, form: str) -> Step:
        """connect or accept: the step that opens connection NAME (default: the default)."""
        name = DEFAULT_CONNECTION
        if tokens:
            name = self.name(tokens.pop(0), "a connection")
        self.no_more(tokens, form)
        if name not in state.conns:
            state.conns.append(name)
        return Step(**base, conn=name, name=name)

    def step_client(self, tokens, state, base) -> Step:
        form = ("client succeeds | client fails | client finishes within S | "
                "client reported DATA | client reported regex \"RE\"")
        head = tokens.pop(0) if tokens else None
        if head is None or head.quoted or head.text not in CLIENT_VERDICTS:
            self.fail(f"write {form}")
        if head.text in ("succeeds", "fails"):
            self.no_more(tokens, form)
            return Step(**base, mode=head.text)
        if head.text == "finishes":
            if not tokens or not tokens[0].word("within"):
                self.fail("write client finishes within S")
            seconds = self.seconds(tokens[1:2], "client finishes within")
            self.no_more(tokens[2:], "client finishes within S")
            return Step(**base, mode="finishes", seconds=seconds)
        if tokens and tokens[0].word("regex"):
            tokens.pop(0)
            pattern = self.regex(tokens.pop(0) if tokens else None)
            self.no_more(tokens, form)
            return Step(**base, mode="reported-regex", pattern=pattern)
        data = self.data(tokens, state, allow_random=False)
        return Step(**base, mode="reported", data=data)

    def step_send(self, tokens, state, base) -> Step:
        conn, tokens = self.connection(tokens, state)
        raw = dribble = False
        pause = DRIBBLE_PAUSE_S
        while tokens and (tokens[0].word("raw") or tokens[0].word("dribble")):
            if tokens[0].text == "raw":
                raw = True
            else:
                dribble = True
                if len(tokens) > 1 and not tokens[1].quoted and \
                        parse_seconds(tokens[1].text) is not None:
                    pause = self.seconds(tokens[1:2], "dribble")
                    tokens = tokens[1:]
            tokens = tokens[1:]
        data = self.data(tokens, state, allow_random=True)
        framing = self.protocol.framing if self.protocol is not None else None
        if framing is not None and not raw:
            literal = b"".join(p.fixed if p.fixed is not None else
                               (p.template.render({v: b"" for v in p.template.variables})
                                if p.template is not None else b"") for p in data.pieces)
            bad = framing.forbidden()
            if bad and bad in literal:
                self.fail(f"the data holds the framing's {framing.describe_delimiter()}: the "
                          "framing adds it (write the payload only, or `send raw ...`)")
            whole = data.literal
            if framing.kind == "fixed" and whole is not None and len(whole) != framing.size:
                self.fail(f"the payload is {len(whole)} bytes; the protocol's messages are "
                          f"{framing.size} (or `send raw ...`)")
        return Step(**base, conn=conn, data=data, raw=raw or framing is None, dribble=dribble,
                    seconds=pause if dribble else 0.0)

    def step_recv(self, tokens, state, base) -> Step:
        conn, tokens = self.connection(tokens, state)
        form = "recv [CONN] N | sent | frame | until \"TEXT\" | until regex \"RE\" | until eof"
        if not tokens:
            self.fail(f"say what to receive: {form}")
        head = tokens.pop(0)
        step: Step
        if head.word("frame"):
            if self.protocol is None:
                self.fail("protocol has no framing (echo and http are bytes as written): "
                          "receive N bytes, `until ...`, or `until eof`")
            step = Step(**base, conn=conn, mode="frame")
        elif head.word("sent"):
            step = Step(**base, conn=conn, mode="sent")
        elif head.word("until"):
            if not tokens:
                self.fail(f"until what? {form}")
            what = tokens.pop(0)
            if what.word("eof"):
                step = Step(**base, conn=conn, mode="eof")
            elif what.word("regex"):
                step = Step(**base, conn=conn, mode="regex",
                            pattern=self.regex(tokens.pop(0) if tokens else None))
            elif what.quoted:
                delimiter = Data((self.piece_text(what, state),))
                if delimiter.literal is None or not delimiter.literal:
                    self.fail("until \"TEXT\": the delimiter is fixed, non-empty text")
                step = Step(**base, conn=conn, mode="until", data=delimiter)
            else:
                self.fail(f"until {what.shown()!r}: {form}")
        elif not head.quoted and head.text.isdigit():
            step = Step(**base, conn=conn, mode="count",
                        count=self.integer(head, "a byte count", 1, MAX_BYTES))
        else:
            self.fail(f"unexpected {head.shown()!r}: {form}")
        self.no_more(tokens, form)
        state.received.add(conn)
        return step

    def step_expect(self, tokens, state, base) -> Step:
        conn, tokens = self.connection(tokens, state)
        form = ("expect [CONN] \"TEXT\" | hex ... | regex \"RE\" | length N | sent | eof | rst "
                "| silence S")
        if not tokens:
            self.fail(f"expect what? {form}")
        head = tokens[0]
        if head.word("eof") or head.word("rst"):
            tokens.pop(0)
            self.no_more(tokens, form)
            if head.text == "rst":
                self.tcp_only("expect rst")
            return Step(**base, conn=conn, mode=head.text)
        if head.word("silence"):
            tokens.pop(0)
            seconds = self.seconds(tokens[:1], "silence")
            self.no_more(tokens[1:], form)
            if base["timeout"] is not None:
                self.fail("expect silence S: S is how long; it takes no timeout")
            return Step(**base, conn=conn, mode="silence", seconds=seconds)
        self.reply_available(conn, state)
        if head.word("regex"):
            tokens.pop(0)
            pattern = self.regex(tokens.pop(0) if tokens else None)
            self.no_more(tokens, form)
            return Step(**base, conn=conn, mode="regex", pattern=pattern)
        if head.word("length"):
            tokens.pop(0)
            count = self.integer(tokens.pop(0) if tokens else None, "a length", 0, MAX_BYTES)
            self.no_more(tokens, form)
            return Step(**base, conn=conn, mode="length", count=count)
        if head.word("sent"):
            self.no_more(tokens[1:], form)
            return Step(**base, conn=conn, mode="sent")
        data = self.data(tokens, state, allow_random=False)
        return Step(**base, conn=conn, mode="exact", data=data)

    def step_capture(self, tokens, state, base) -> Step:
        form = "capture [CONN] VAR \"REGEX\""
        words = []
        while tokens and not tokens[0].quoted and not tokens[0].word("regex"):
            words.append(tokens.pop(0))
        if len(words) == 2:
            conn, _ = self.connection([words[0]], state)
        elif len(words) == 1:
            conn, _ = self.connection([], state)
        else:
            self.fail(f"write {form}")
        var = self.name(words[-1], "a variable")
        if tokens and tokens[0].word("regex"):
            tokens.pop(0)
        pattern = self.regex(tokens.pop(0) if tokens else None)
        self.no_more(tokens, form)
        self.reply_available(conn, state)
        state.variables.add(var)
        return Step(**base, conn=conn, name=var, pattern=pattern)

    def step_set(self, tokens, state, base) -> Step:
        if not tokens:
            self.fail("write set VAR \"TEXT\"")
        var = self.name(tokens.pop(0), "a variable")
        data = self.data(tokens, state, allow_random=True)
        state.variables.add(var)
        return Step(**base, name=var, data=data)

    def _ending(self, tokens, state, base) -> Step:
        conn, tokens = self.connection(tokens, state)
        self.no_more(tokens, f"{base['verb']} [CONN]")
        return Step(**base, conn=conn)

    step_shutdown = step_close = _ending

    def step_reset(self, tokens, state, base) -> Step:
        step = self._ending(tokens, state, base)
        self.tcp_only("reset")
        return step

    def step_pause(self, tokens, state, base) -> Step:
        seconds = self.seconds(tokens[:1], "pause")
        self.no_more(tokens[1:], "pause S")
        return Step(**base, seconds=seconds)

    def step_barrier(self, tokens, state, base) -> Step:
        name = self.name(tokens.pop(0) if tokens else None, "a barrier")
        self.no_more(tokens, "barrier NAME")
        state.barriers.setdefault(name, base["line"])
        return Step(**base, name=name)

    def step_repeat(self, tokens, state, base) -> Step:
        form = "repeat N [as VAR] {"
        if not tokens or not tokens[-1].word("{"):
            self.fail(f"write `{form}`, its steps, then `}}`")
        tokens = tokens[:-1]
        count = self.integer(tokens.pop(0) if tokens else None, "a repeat count", 1, MAX_REPEAT)
        var = ""
        if tokens and tokens[0].word("as"):
            tokens.pop(0)
            var = self.name(tokens.pop(0) if tokens else None, "a variable")
        self.no_more(tokens, form)
        known = var in state.variables
        if var:
            state.variables.add(var)
        body = self.block(state, base["line"])
        if var and not known:
            state.variables.discard(var)
        if not body:
            self.line = base["line"]
            self.step = "repeat"
            self.fail("an empty repeat block")
        return Step(**base, count=count, var=var, body=tuple(body))

    # -- pieces of steps

    def connection(self, tokens: list[Token], state: _ActorState) -> tuple[str, list[Token]]:
        """The connection a step names first, or the actor's only one."""
        if tokens and not tokens[0].quoted and tokens[0].text not in KEYWORDS \
                and _NAME.fullmatch(tokens[0].text):
            name = tokens[0].text
            if name not in state.conns:
                close = difflib.get_close_matches(name, [*KEYWORDS, *state.conns], n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                opener = "accept" if self.role == "client" else "connect"
                self.fail(f"no connection {name!r} here: open it first with `{opener} {name}`"
                          f"{hint}")
            return name, tokens[1:]
        if not state.conns:
            opener = "accept" if self.role == "client" else "connect"
            self.fail(f"no connection yet: `{opener}` comes first")
        if len(state.conns) > 1:
            self.fail(f"this actor has several connections ({', '.join(state.conns)}): "
                      "name the one to use after the step's word")
        return state.conns[0], tokens

    def reply_available(self, conn: str, state: _ActorState) -> None:
        if self.protocol is None and conn not in state.received:
            self.fail(f"nothing received on connection {conn!r} yet: a protocol without "
                      "framing (echo, http) needs a `recv` step first")

    def data(self, tokens: list[Token], state: _ActorState, allow_random: bool) -> Data:
        pieces: list[Piece] = []
        form = ("data is \"TEXT\", hex 0a 0b ..., repeat \"TEXT\" N, random N or file PATH"
                if allow_random else "data is \"TEXT\", hex 0a 0b ..., repeat \"TEXT\" N or "
                "file PATH")
        if not tokens:
            self.fail(form)
        while tokens:
            token = tokens.pop(0)
            if token.quoted:
                pieces.append(self.piece_text(token, state))
            elif token.word("hex"):
                words = []
                while tokens and not tokens[0].quoted and _HEXWORD.fullmatch(tokens[0].text):
                    words.append(tokens.pop(0).text)
                try:
                    fixed = bytes.fromhex(" ".join(words)) if words else b""
                except ValueError:
                    fixed = b""
                    self.fail(f"hex {' '.join(words)!r}: whole bytes of hex digits (two each)")
                if not fixed:
                    self.fail("hex needs at least one byte of hex digits")
                pieces.append(Piece(fixed=fixed))
            elif token.word("repeat"):
                if not tokens or not tokens[0].quoted:
                    self.fail("write repeat \"TEXT\" N")
                text = self.piece_text(tokens.pop(0), state)
                if text.template is not None and text.template.variables:
                    self.fail("repeat \"TEXT\" N: the text is fixed (no variables)")
                count = self.integer(tokens.pop(0) if tokens else None, "a repeat count", 1,
                                     MAX_BYTES)
                pattern = text.render({}, None, b"")
                if not pattern or len(pattern) * count > MAX_BYTES:
                    self.fail(f"repeat: {len(pattern) * count} bytes (at most {MAX_BYTES}, "
                              "at least 1)")
                pieces.append(Piece(fixed=pattern * count))
            elif token.word("random"):
                if not allow_random:
                    self.fail("random bytes cannot be expected (`expect sent` compares with "
                              "what was sent)")
                pieces.append(Piece(random_size=self.integer(
                    tokens.pop(0) if tokens else None, "a byte count", 1, MAX_BYTES)))
            elif token.word("file"):
                if not tokens:
                    self.fail("write file PATH (relative to the scenario file)")
                name = tokens.pop(0).text
                try:
                    content = (self.path.parent / name).read_bytes()
                except OSError as exc:
                    self.fail(f"file {name!r}: cannot read it: {exc.strerror or exc}")
                if len(content) > MAX_BYTES:
                    self.fail(f"file {name!r} is over {MAX_BYTES} bytes")
                pieces.append(Piece(fixed=content))
            else:
                close = difflib.get_close_matches(token.text, ["hex", "repeat", "random", "file",
                                                               "raw"], n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                self.fail(f"unexpected {token.shown()!r}: {hint}{form}")
        return Data(tuple(pieces))

    def piece_text(self, token: Token, state: _ActorState) -> Piece:
        if token.bad_escape:
            self.fail(f"unknown escape {token.bad_escape} in {token.shown()} (escapes: \\\\ "
                      "\\\" \\n \\r \\t \\0 \\xHH; a regex keeps its backslashes)")
        try:
            template = Template.parse(token.text)
        except ValueError as exc:
            self.fail(f"in {token.shown()}: {exc}")
        for variable in template.variables:
            if variable not in state.variables:
                known = ", ".join(sorted(state.variables)) or "none yet"
                self.fail(f"undefined variable {{{variable}}} (defined here so far: {known}; "
                          "`capture`, `set`, `repeat N as VAR` and `actor NAME * N as VAR` "
                          "define variables)")
        return Piece(template=template)

    def regex(self, token: Token | None) -> re.Pattern[bytes]:
        if token is None or not token.quoted:
            self.fail("a regex is a string in quotes: regex \"^:[0-9]+$\"")
        try:
            return re.compile(token.raw.encode())
        except re.error as exc:
            self.fail(f"bad regex {token.shown()}: {exc}")

    def name(self, token: Token | None, what: str) -> str:
        if token is None or token.quoted or not _NAME.fullmatch(token.text):
            self.fail(f"{what} needs a name (a letter or '_', then letters, digits, '_'), "
                      f"got {token.shown() if token else 'nothing'}")
        if token.text in KEYWORDS or token.text in RESERVED_STEPS:
            self.fail(f"{token.text!r} is a keyword; choose another name for {what}")
        return token.text

    def integer(self, token: Token | None, what: str, low: int, high: int) -> int:
        if token is None or token.quoted or not token.text.isdigit() or \
                not low <= int(token.text) <= high:
            self.fail(f"{what} must be a whole number from {low} to {high}, got "
                      f"{token.shown() if token else 'nothing'}")
        return int(token.text)

    def seconds(self, tokens: list[Token], what: str) -> float:
        value = parse_seconds(tokens[0].text) if tokens and not tokens[0].quoted else None
        if value is None or not 0 < value <= MAX_SECONDS or len(tokens) != 1:
            self.fail(f"{what} needs one duration in seconds (2, 0.5, 500ms) above 0 and at "
                      f"most {MAX_SECONDS:g}")
        return value

    def no_more(self, tokens: list[Token], form: str) -> None:
        if tokens:
            self.fail(f"unexpected {tokens[0].shown()!r}: write {form}")

    def tcp_only(self, what: str) -> None:
        if "unix" in self.transports:
            self.fail(f"{TCP_ONLY[what]}; add the header line `transports tcp tcp6` so the "
                      "scenario skips Unix sockets")

    def barrier_parties(self, actors: list[Actor], states: list[_ActorState]) -> dict[str, int]:
        parties: dict[str, int] = {}
        first: dict[str, int] = {}
        by_name = {s.name: s for s in states}
        for actor in actors:
            for name, line in by_name[actor.name].barriers.items():
                parties[name] = parties.get(name, 0) + actor.copies
                first.setdefault(name, line)
        for name, count in parties.items():
            if count < 2:
                self.step = "barrier"
                self.fail(f"barrier {name!r} is named by one actor only: a barrier waits for "
                          "every actor that names it (put it in two actors or more)",
                          line=first[name])
        return parties


@functools.cache
def builtin_families() -> dict:
    """The built-in catalogue's families by name (imported once, when a file is read)."""
    from sockspec.catalogue import families, load_catalogue

    return families(load_catalogue())


def shown_path(path: Path) -> str:
    """The path as errors show it: relative to the working directory when below it."""
    try:
        return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else str(path)
    except ValueError:
        return str(path)


def parse_scenario_file(path: str | Path) -> ScenarioFile:
    """Read and check one scenario file; ScenarioFileError (one line) on any mistake."""
    path = Path(path).resolve()
    shown = shown_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioFileError(f"{shown}: cannot read the scenario file: "
                                f"{getattr(exc, 'strerror', None) or exc}") from None
    return Parser(path, text, shown).parse()


def is_scenario_file(path: str | Path) -> bool:
    return str(path).endswith(SUFFIX)
