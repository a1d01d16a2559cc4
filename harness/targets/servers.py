"""Targets: servers under test and the argv templates that start them.

The targets TOML is a public contract (README, "Targets file"): a list of
``[[server]]`` tables with ``name``, ``profile``, ``tcp`` and/or ``unix`` argv
templates, and an optional ``ipv6`` flag. Unknown keys are ignored so that
newer files still load, with one warning per key naming the closest known key
(``UnknownKeys``); anything wrong in a known key names the file, the table and
the key. The same file may declare clients under test as
``[[client]]`` tables: harness/targets/clients.py parses those.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import shlex
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from sockspec.errors import AddressError, TargetConfigError, UsageError
from sockspec.protocol.declared import Protocol, load_protocol_file, parse_protocols
from sockspec.targets import PROFILES, TRANSPORTS  # noqa: F401 (TRANSPORTS re-exported)
from sockspec.thresholds import Threshold, parse_threshold_table
from sockspec.transport import Address, parse_address

TRANSPORT_HOSTS = {"tcp": "127.0.0.1", "tcp6": "::1"}

PLACEHOLDER = re.compile(r"\{(host|port|hostport|path|root)\}")
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout, or site-packages
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]*"

# The keys the targets file knows; any other is ignored with a warning.
TOP_LEVEL_KEYS = ("server", "client", "protocol", "protocols", "toxic")
SERVER_KEYS = ("name", "profile", "tcp", "unix", "ipv6", "connect", "root", "thresholds")


class UnknownKeys:
    """Keys a targets file has that this sockspec does not know.

    Harmless (a newer file still loads), but most are typos (``timeout`` for
    ``timeout_s``, ``ipv66``): one warning per key and place (top level,
    ``[[server]]``, ``[[client]]``), with the closest known key.
    """

    def __init__(self, file: Path) -> None:
        self.file = file
        self.messages: list[str] = []
        self._seen: set[tuple[str, str]] = set()

    def check(self, table: dict, known: tuple[str, ...], place: str, where: str) -> None:
        for key in table:
            if key in known or (place, key) in self._seen:
                continue
            self._seen.add((place, key))
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            advice = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
            self.messages.append(f"{where}: unknown key {key!r} ignored; {advice}")


def check_name(table: dict, where: str) -> str:
    """The table's ``name`` key, or TargetConfigError (missing or malformed)."""
    if "name" not in table:
        raise TargetConfigError(f"{where}: missing key 'name' (letters, digits, '_', '.', '-')")
    name = table["name"]
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        raise TargetConfigError(
            f"{where}: key 'name' must be letters, digits, '_', '.', '-' (got {name!r})"
        )
    return name


def describe_profiles(protocols: dict[str, Protocol]) -> str:
    """The profiles a target may name: the built-in ones and the declared protocols."""
    names = [f'"{name}"' for name in (*PROFILES, *sorted(protocols))]
    return ", ".join(names[:-1]) + f" or {names[-1]}"


def check_profile(table: dict, where: str, protocols: dict[str, Protocol] | None = None) -> str:
    """The table's ``profile`` key, or TargetConfigError (missing or unknown): a built-in
    profile or the name of a declared ``[[protocol]]``."""
    protocols = protocols or {}
    if "profile" not in table:
        raise TargetConfigError(f"{where}: missing key 'profile' ({describe_profiles(protocols)})")
    profile = table["profile"]
    if profile not in PROFILES and profile not in protocols:
        raise TargetConfigError(f"{where}: key 'profile' must be {describe_profiles(protocols)} "
                                f"(a declared [[protocol]]), got {profile!r}")
    return profile


def read_protocols(data: dict, file: Path, text: str) -> dict[str, Protocol]:
    """The protocols a targets file declares: the files its ``protocols`` list names
    (relative to it), then its own ``[[protocol]]`` tables."""
    found: dict[str, Protocol] = {}
    files = data.get("protocols", [])
    if isinstance(files, str):
        files = [files]
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise TargetConfigError(f"{file}: key 'protocols' must be a list of protocol files")
    for name in files:
        for protocol in load_protocol_file(file.parent / name, set(found)):
            found[protocol.name] = protocol
    for protocol in parse_protocols(file, text, data, set(found)):
        found[protocol.name] = protocol
    return found


def load_protocol_files(paths: list[str] | tuple[str, ...], cwd: str) -> dict[str, Protocol]:
    """The protocols of ``--protocols FILE`` options."""
    found: dict[str, Protocol] = {}
    for path in paths:
        for protocol in load_protocol_file(Path(cwd) / path, set(found)):
            found[protocol.name] = protocol
    return found


class ArgvTemplates:
    """Transports of a program started from ``tcp``/``unix`` argv templates."""

    name: str
    tcp: tuple[str, ...] | None
    unix: tuple[str, ...] | None
    ipv6: bool

    def transports(self) -> list[str]:
        found = []
        if self.tcp:
            found.append("tcp")
            if self.ipv6:
                found.append("tcp6")
        if self.unix:
            found.append("unix")
        return found

    def template_for(self, transport: str) -> tuple[str, ...]:
        template = self.unix if transport == "unix" else self.tcp
        if template is None or transport not in self.transports():
            raise UsageError(f"{self.kind} {self.name!r} has no {transport} command")
        return template


@dataclass(frozen=True)
class Target(ArgvTemplates):
    """A server under test, started from argv templates."""

    name: str
    profile: str
    tcp: tuple[str, ...] | None
    unix: tuple[str, ...] | None
    ipv6: bool
    cwd: str
    source: str
    connect: Address | None = None   # a server already running: never started or stopped
    root: str | None = None          # its document root (http), which the harness fills
    # The user's thresholds for this server's measurement figures ([server.thresholds]);
    # names are checked against the catalogue by sockspec.targets.selection.
    thresholds: tuple[Threshold, ...] = ()
    protocol: Protocol | None = None  # its declared protocol (None: a built-in profile)

    kind = "server"

    @property
    def managed(self) -> bool:
        """True when the harness starts and stops the server itself."""
        return self.connect is None

    def transports(self) -> list[str]:
        if self.connect is not None:
            return [self.connect.transport]
        return super().transports()


def render_argv(template: tuple[str, ...], values: dict[str, str]) -> list[str]:
    """Fill the known placeholders; any other brace text is left as written."""
    return [PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), arg) for arg in template]


def placeholder_values(
    *, host: str = "", port: int = 0, path: str = "", root: str = ""
) -> dict[str, str]:
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return {"host": host, "port": str(port), "hostport": hostport, "path": path, "root": root}


def builtin_targets() -> dict[str, Target]:
    """The reference servers, runnable wherever the harness package is importable."""
    targets = {}
    for profile in PROFILES:
        base = (sys.executable, "-m", "sockspec.reference.server", "--profile", profile)
        root_args = ("-r", "{root}") if profile == "http" else ()
        targets[f"reference-{profile}"] = Target(
            name=f"reference-{profile}",
            profile=profile,
            tcp=base + ("-h", "{host}", "-p", "{port}") + root_args,
            unix=base + ("-u", "{path}") + root_args,
            ipv6=True,
            cwd=str(PROJECT_ROOT),
            source="built-in",
        )
    return targets


def check_adhoc_profile(option: str, profile: str | None,
                        protocols: dict[str, Protocol]) -> Protocol | None:
    """UsageError unless ``profile`` is built in or declared (--protocols FILE); the
    declared protocol, or None for a built-in profile."""
    if profile is None:
        raise UsageError(f"{option} needs --profile ({describe_profiles(protocols)})")
    if profile in PROFILES:
        return None
    if profile not in protocols:
        more = "" if protocols else "; a protocol of your own needs --protocols FILE"
        raise UsageError(f"--profile {profile!r} is unknown: use {describe_profiles(protocols)}"
                         f"{more}")
    return protocols[profile]


def split_adhoc_command(option: str, command: str, profile: str | None,
                        protocols: dict[str, Protocol] | None = None) -> tuple[str, ...]:
    """The argv of an ad-hoc target's ``option`` (--server-cmd, --client-cmd); UsageError
    when its --profile is missing or the command does not split."""
    check_adhoc_profile(option, profile, protocols or {})
    try:
        argv = tuple(shlex.split(command))
    except ValueError as exc:
        raise UsageError(f"{option}: cannot split {command!r}: {exc}") from None
    if not argv:
        raise UsageError(f"{option} is empty")
    return argv


def adhoc_target(command: str, profile: str | None, cwd: str,
                 protocols: dict[str, Protocol] | None = None) -> Target:
    """One target from ``--server-cmd "..." --profile P``.

    A command that mentions ``{path}`` is a Unix-socket command; otherwise TCP,
    with IPv6 allowed when it takes ``{host}`` or ``{hostport}``.
    """
    argv = split_adhoc_command("--server-cmd", command, profile, protocols)
    is_unix = any("{path}" in arg for arg in argv)
    target = Target(
        name="server-cmd",
        profile=profile,
        tcp=None if is_unix else argv,
        unix=argv if is_unix else None,
        ipv6=not is_unix and any("{host" in arg for arg in argv),
        cwd=cwd,
        source="--server-cmd",
        protocol=(protocols or {}).get(profile),
    )
    problem = _template_problem(target, flag="--server-cmd")
    if problem:
        raise UsageError(f"--server-cmd: {problem}")
    return target


def connect_target(
    address_text: str, profile: str | None, root: str | None, *, allow_remote: bool,
    name: str = "connect", source: str = "--connect",
    protocols: dict[str, Protocol] | None = None,
) -> Target:
    """A server that is already running at ``tcp:HOST:PORT`` or ``unix:PATH``."""
    protocol = check_adhoc_profile(source, profile, protocols or {})
    address = parse_address(address_text)
    if not allow_remote and not address.is_loopback():
        raise AddressError(
            f"{address} is not on loopback (127.0.0.0/8, ::1): pass --allow-remote to test it"
        )
    if profile == "http" and not root:
        raise UsageError(f"{source}: an http server needs its document root (root / --root)")
    return Target(name=name, profile=profile, tcp=None, unix=None, ipv6=False, cwd=".",
                  source=source, connect=address, root=root, protocol=protocol)


def load_targets(path: str | Path, *, allow_remote: bool = False) -> list[Target]:
    """Read and validate the ``[[server]]`` tables of a targets TOML file.

    A file may also hold ``[[client]]`` tables: sockspec.targets.clients.load_target_file
    reads both kinds.
    """
    file = Path(path)
    data = read_targets_toml(file)
    protocols = read_protocols(data, file, file.read_text(encoding="utf-8"))
    return parse_server_tables(data, file, allow_remote=allow_remote, protocols=protocols)


def read_targets_toml(file: Path) -> dict:
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TargetConfigError(f"{file}: no such targets file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetConfigError(f"{file}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TargetConfigError(f"{file}: invalid TOML: {exc}") from None


def parse_server_tables(data: dict, file: Path, *, allow_remote: bool = False,
                        unknown: UnknownKeys | None = None,
                        protocols: dict[str, Protocol] | None = None) -> list[Target]:
    """The validated ``[[server]]`` tables of a parsed targets file (at least one);
    unknown keys go to ``unknown`` as warnings."""
    tables = data.get("server", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise TargetConfigError(f"{file}: 'server' must be an array of tables ([[server]])")
    if not tables:
        raise TargetConfigError(f"{file}: no [[server]] tables")
    cwd = str(file.resolve().parent)
    targets: list[Target] = []
    seen: set[str] = set()
    for index, table in enumerate(tables, start=1):
        target = _parse_server_table(
            table, f"{file}: [[server]] #{index}", cwd, str(file), allow_remote, protocols or {}
        )
        if unknown is not None:
            unknown.check(table, SERVER_KEYS, "server",
                          f"{file}: [[server]] #{index} ({target.name!r})")
        if target.name in seen:
            raise TargetConfigError(f"{file}: [[server]] #{index}: name {target.name!r} is used twice")
        seen.add(target.name)
        targets.append(target)
    return targets


def _parse_server_table(
    table: dict, where: str, cwd: str, source: str, allow_remote: bool,
    protocols: dict[str, Protocol],
) -> Target:
    name = check_name(table, where)
    where = f"{where} ({name!r})"
    profile = check_profile(table, where, protocols)
    thresholds = (parse_threshold_table(table["thresholds"], where) if "thresholds" in table
                  else ())
    if "connect" in table:
        target = _parse_connect_table(table, where, cwd, source, name, profile, allow_remote,
                                      protocols)
        return dataclasses.replace(target, thresholds=thresholds)
    argvs = {key: parse_argv(table, key, where) for key in ("tcp", "unix")}
    if argvs["tcp"] is None and argvs["unix"] is None:
        raise TargetConfigError(
            f"{where}: needs a 'tcp' or a 'unix' command (an argv list), or 'connect'"
        )
    ipv6 = table.get("ipv6", False)
    if not isinstance(ipv6, bool):
        raise TargetConfigError(f"{where}: key 'ipv6' must be true or false, got {ipv6!r}")
    target = Target(name, profile, argvs["tcp"], argvs["unix"], ipv6, cwd, source,
                    thresholds=thresholds, protocol=protocols.get(profile))
    problem = _template_problem(target)
    if problem:
        raise TargetConfigError(f"{where}: {problem}")
    return target


def _parse_connect_table(
    table: dict, where: str, cwd: str, source: str, name: str, profile: str, allow_remote: bool,
    protocols: dict[str, Protocol],
) -> Target:
    if "tcp" in table or "unix" in table:
        raise TargetConfigError(f"{where}: 'connect' excludes 'tcp' and 'unix' commands")
    address, root = table["connect"], table.get("root")
    if not isinstance(address, str):
        raise TargetConfigError(f"{where}: key 'connect' must be \"tcp:HOST:PORT\" or \"unix:PATH\"")
    if root is not None and not isinstance(root, str):
        raise TargetConfigError(f"{where}: key 'root' must be a directory path")
    if root is not None:
        root = str((Path(cwd) / root).resolve())
    try:
        return connect_target(address, profile, root, allow_remote=allow_remote, name=name,
                              source=source, protocols=protocols)
    except (AddressError, UsageError) as exc:
        raise TargetConfigError(f"{where}: key 'connect': {exc}") from None


def parse_argv(table: dict, key: str, where: str) -> tuple[str, ...] | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(a, str) for a in value):
        raise TargetConfigError(f"{where}: key {key!r} must be a non-empty list of strings (argv)")
    return tuple(value)


def _template_problem(target: Target, flag: str | None = None) -> str | None:
    """Say why a template cannot work, or None: the server must learn its address.

    With ``flag`` (--server-cmd) the problem speaks of the command, not of TOML keys.
    """
    if flag is not None:
        text = " ".join(target.tcp or target.unix or ())
        if not any(p in text for p in ("{port}", "{hostport}", "{path}")):
            return ("the command never mentions {port} or {hostport} (TCP) or {path} "
                    "(Unix socket)")
        if target.profile == "http" and "{root}" not in text:
            return "an http server command must take the document root {root}"
        return None
    checks = [
        ("tcp", target.tcp, ("{port}", "{hostport}")),
        ("unix", target.unix, ("{path}",)),
    ]
    for key, argv, needed in checks:
        if argv is None:
            continue
        text = " ".join(argv)
        if not any(p in text for p in needed):
            return f"key {key!r}: the command never mentions {' or '.join(needed)}"
        if target.profile == "http" and "{root}" not in text:
            return f"key {key!r}: an http server command must take the document root {{root}}"
    if target.ipv6 and target.tcp and "{host" not in " ".join(target.tcp):
        return "ipv6 = true needs a 'tcp' command that takes {host} or {hostport}"
    return None
