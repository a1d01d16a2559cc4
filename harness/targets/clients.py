"""Client targets: clients under test, the ``[[client]]`` tables of a targets file.

Part of the targets TOML contract (README, "Clients under test"). A client
under test is a program the harness starts once per scenario, from an argv
template, against a server the harness plays itself; it is judged from its exit
status and from what it reports it received (its stdout, or a file ``{out}``).

    [[client]]
    name = "my_client"
    profile = "echo"                      # "echo", "http" or a declared [[protocol]]
    tcp  = ["build/client", "{hostport}", "{in}"]
    unix = ["build/client", "-u", "{path}", "{in}"]
    ipv6 = true                           # optional: also over ::1
    output = "stdout"                     # or "file": the client writes {out}
    success_status = 0
    failure_status = [1]                  # or "nonzero" (the default)
    timeout_s = 10                        # its stated limit on any wait
    report = "replies"                    # declared protocols only (REPORTS)

The same file may hold ``[[server]]`` tables; ``load_target_file`` reads both.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from sockspec.errors import TargetConfigError, UsageError
from sockspec.protocol.declared import Protocol
from sockspec.targets.servers import (
    PROJECT_ROOT,
    TOP_LEVEL_KEYS,
    ArgvTemplates,
    Target,
    UnknownKeys,
    check_name,
    check_profile,
    parse_argv,
    parse_server_tables,
    read_protocols,
    read_targets_toml,
    split_adhoc_command,
)
from sockspec.toxics.spec import ToxicProfile, profiles_of_tables

CLIENT_PLACEHOLDER = re.compile(r"\{(host|port|hostport|path|in|out|url_path|url)\}")
OUTPUTS = ("stdout", "file")
DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 600.0
# The reference clients' stated limit: short, so that the scenarios where the
# server never answers cost seconds, not minutes.
REFERENCE_CLIENT_TIMEOUT_S = 3.0
CLIENT_KEYS = ("name", "profile", "tcp", "unix", "ipv6", "output", "success_status",
               "failure_status", "timeout_s", "report")
# Clients of a declared protocol: what their report (stdout or {out}) holds, if it is
# judged: every reply payload received, each followed by a newline ("replies"), or in
# hex digits, one reply a line ("replies_hex"). Without ``report`` only the exit status is.
REPORTS = ("replies", "replies_hex")
# Placeholders that mean nothing to a client of a declared protocol (it sends its own
# requests): {in} is the echo input, {url_path}/{url} the http path.
NOT_DECLARED_PLACEHOLDERS = ("{in}", "{url_path}", "{url}")


@dataclass(frozen=True)
class ClientTarget(ArgvTemplates):
    """A client under test, started from argv templates."""

    name: str
    profile: str
    tcp: tuple[str, ...] | None
    unix: tuple[str, ...] | None
    ipv6: bool
    output: str                           # "stdout" or "file"
    success_status: int
    failure_status: tuple[int, ...] | None  # None: any exit status other than success
    timeout_s: float
    cwd: str
    source: str
    protocol: Protocol | None = None  # its declared protocol (None: a built-in profile)
    report: str | None = None         # declared protocols: REPORTS, or None (status only)

    kind = "client"
    managed = True  # always started by the harness

    def is_failure_status(self, status: int | None) -> bool:
        """A failure report: a declared failure status (death by a signal never is one)."""
        if status is None or status < 0 or status == self.success_status:
            return False
        return self.failure_status is None or status in self.failure_status

    def describe_failure_statuses(self) -> str:
        if self.failure_status is None:
            return f"any status other than {self.success_status}"
        return ", ".join(str(s) for s in self.failure_status)


@dataclass(frozen=True)
class TargetFile:
    """Everything a targets file declares."""

    servers: list[Target]
    clients: list[ClientTarget]
    # One line per unknown key (ignored): the command prints them once.
    warnings: tuple[str, ...] = ()
    # Its [[toxic]] tables, as toxic profiles (sockspec.toxics.spec).
    toxics: tuple[ToxicProfile, ...] = ()


def render_client_argv(template: tuple[str, ...], values: dict[str, str]) -> list[str]:
    """Fill the known placeholders; any other brace text is left as written."""
    return [CLIENT_PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), arg)
            for arg in template]


def client_placeholder_values(
    *, host: str = "", port: int = 0, path: str = "", input_path: str = "",
    output_path: str = "", url_path: str = "/",
) -> dict[str, str]:
    """Values for a client's template; ``{url}`` is http://HOST:PORT/... or, for a
    Unix socket, http://localhost/... (as curl --unix-socket expects)."""
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    authority = hostport if host else "localhost"
    return {"host": host, "port": str(port) if host else "", "hostport": hostport if host else "",
            "path": path, "in": input_path, "out": output_path, "url_path": url_path,
            "url": f"http://{authority}{url_path}"}


def builtin_client_targets() -> dict[str, ClientTarget]:
    """The reference clients (python -m sockspec.reference.client), echo and http."""
    base = (sys.executable, "-m", "sockspec.reference.client")
    limit = ("--timeout", f"{REFERENCE_CLIENT_TIMEOUT_S:g}")
    commands = {
        "echo": lambda where: base + ("echo", where, "--file", "{in}") + limit,
        "http": lambda where: base + ("get", where, "{url_path}") + limit,
    }
    return {
        f"reference-{profile}-client": ClientTarget(
            name=f"reference-{profile}-client", profile=profile,
            tcp=command("{hostport}"), unix=command("unix:{path}"), ipv6=True,
            output="stdout", success_status=0, failure_status=(1,),
            timeout_s=REFERENCE_CLIENT_TIMEOUT_S, cwd=str(PROJECT_ROOT), source="built-in",
        )
        for profile, command in commands.items()
    }


def adhoc_client_target(command: str, profile: str | None, cwd: str,
                        protocols: dict[str, Protocol] | None = None) -> ClientTarget:
    """One client from ``--client-cmd "..." --profile P``.

    As a [[client]] table with the defaults: it reports on stdout, exit 0 is
    success and any other status a reported failure, its stated limit is
    DEFAULT_TIMEOUT_S. A command that mentions ``{path}`` is a Unix-socket
    command; otherwise TCP, also over ::1 when it takes ``{host}``,
    ``{hostport}`` or ``{url}``.
    """
    argv = split_adhoc_command("--client-cmd", command, profile, protocols)
    text = " ".join(argv)
    is_unix = "{path}" in text
    client = ClientTarget(
        name="client-cmd", profile=profile, tcp=None if is_unix else argv,
        unix=argv if is_unix else None,
        ipv6=not is_unix and any(p in text for p in ("{host}", "{hostport}", "{url}")),
        output="file" if "{out}" in text else "stdout", success_status=0,
        failure_status=None, timeout_s=DEFAULT_TIMEOUT_S, cwd=cwd, source="--client-cmd",
        protocol=(protocols or {}).get(profile))
    problem = command_problem(client, "unix" if is_unix else "tcp", argv)
    if problem:
        raise UsageError(f"--client-cmd: {problem}")
    return client


def load_target_file(path: str | Path, *, allow_remote: bool = False) -> TargetFile:
    """Read and validate a targets file: its ``[[server]]`` and ``[[client]]`` tables.

    Either kind may be absent, not both. Names are unique across both kinds, so
    ``--target NAME`` is never ambiguous.
    """
    file = Path(path)
    data = read_targets_toml(file)
    protocols = read_protocols(data, file, file.read_text(encoding="utf-8"))
    unknown = UnknownKeys(file)
    unknown.check(data, TOP_LEVEL_KEYS, "top", f"{file}: top level")
    has_servers = bool(data.get("server"))
    servers = parse_server_tables(data, file, allow_remote=allow_remote,
                                  unknown=unknown, protocols=protocols) if has_servers else []
    clients = parse_client_tables(data, file, unknown=unknown, protocols=protocols)
    if not servers and not clients:
        raise TargetConfigError(f"{file}: no [[server]] or [[client]] tables")
    seen = {t.name for t in servers}
    for index, client in enumerate(clients, start=1):
        if client.name in seen:
            raise TargetConfigError(
                f"{file}: [[client]] #{index}: name {client.name!r} is used twice")
        seen.add(client.name)
    toxics = tuple(profiles_of_tables(data["toxic"], file)) if "toxic" in data else ()
    return TargetFile(servers, clients, tuple(unknown.messages), toxics)


def parse_client_tables(data: dict, file: Path, unknown: UnknownKeys | None = None,
                        protocols: dict[str, Protocol] | None = None) -> list[ClientTarget]:
    tables = data.get("client", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise TargetConfigError(f"{file}: 'client' must be an array of tables ([[client]])")
    cwd = str(file.resolve().parent)
    clients: list[ClientTarget] = []
    for index, table in enumerate(tables, start=1):
        client = parse_client_table(table, f"{file}: [[client]] #{index}", cwd, str(file),
                                    protocols or {})
        if unknown is not None:
            unknown.check(table, CLIENT_KEYS, "client",
                          f"{file}: [[client]] #{index} ({client.name!r})")
        if any(c.name == client.name for c in clients):
            raise TargetConfigError(
                f"{file}: [[client]] #{index}: name {client.name!r} is used twice")
        clients.append(client)
    return clients


def parse_client_table(table: dict, where: str, cwd: str, source: str,
                       protocols: dict[str, Protocol] | None = None) -> ClientTarget:
    name = check_name(table, where)
    where = f"{where} ({name!r})"
    profile = check_profile(table, where, protocols)
    if "thresholds" in table:
        # Thresholds judge measurement figures; every measurement family judges servers.
        raise TargetConfigError(f"{where}: key 'thresholds' applies to [[server]] tables only: "
                                "no client scenario measures a figure")
    argvs = {key: parse_argv(table, key, where) for key in ("tcp", "unix")}
    if argvs["tcp"] is None and argvs["unix"] is None:
        raise TargetConfigError(f"{where}: needs a 'tcp' or a 'unix' command (an argv list)")
    ipv6 = table.get("ipv6", False)
    if not isinstance(ipv6, bool):
        raise TargetConfigError(f"{where}: key 'ipv6' must be true or false, got {ipv6!r}")
    output = table.get("output", "stdout")
    if output not in OUTPUTS:
        raise TargetConfigError(f"{where}: key 'output' must be \"stdout\" or \"file\", "
                                f"got {output!r}")
    success = table.get("success_status", 0)
    if not _is_status(success):
        raise TargetConfigError(f"{where}: key 'success_status' must be an exit status 0-255, "
                                f"got {success!r}")
    failure = _failure_statuses(table.get("failure_status", "nonzero"), success, where)
    timeout = table.get("timeout_s", DEFAULT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) \
            or not 0 < timeout <= MAX_TIMEOUT_S:
        raise TargetConfigError(f"{where}: key 'timeout_s' must be a number of seconds in "
                                f"(0, {MAX_TIMEOUT_S:g}], got {timeout!r}")
    protocol = (protocols or {}).get(profile)
    report = table.get("report")
    if report is not None and protocol is None:
        raise TargetConfigError(f"{where}: key 'report' is for clients of a declared "
                                f"[[protocol]]; an {profile} client's report is always judged")
    if report is not None and report not in REPORTS:
        raise TargetConfigError(f"{where}: key 'report' must be \"replies\" or \"replies_hex\", "
                                f"got {report!r}")
    client = ClientTarget(name, profile, argvs["tcp"], argvs["unix"], ipv6, output, success,
                          failure, float(timeout), cwd, source, protocol=protocol, report=report)
    problem = client_template_problem(client)
    if problem:
        raise TargetConfigError(f"{where}: {problem}")
    return client


def _is_status(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255


def _failure_statuses(value: object, success: int, where: str) -> tuple[int, ...] | None:
    if value == "nonzero":
        return None
    if not isinstance(value, list) or not value or not all(_is_status(v) for v in value):
        raise TargetConfigError(f"{where}: key 'failure_status' must be a list of exit statuses "
                                f"0-255 or \"nonzero\", got {value!r}")
    if success in value:
        raise TargetConfigError(f"{where}: key 'failure_status' contains the success status "
                                f"{success}")
    return tuple(value)


NEEDED_PLACEHOLDERS = {"tcp": ("{port}", "{hostport}", "{url}"), "unix": ("{path}",)}


def client_template_problem(client: ClientTarget) -> str | None:
    """Say why a template cannot work, or None: the client must learn where to go."""
    for key, argv in (("tcp", client.tcp), ("unix", client.unix)):
        problem = command_problem(client, key, argv) if argv is not None else None
        if problem:
            return f"key {key!r}: {problem}"
    if client.ipv6 and client.tcp and not any(
            p in " ".join(client.tcp) for p in ("{host", "{url}")):
        return "ipv6 = true needs a 'tcp' command that takes {host}, {hostport} or {url}"
    return None


def command_problem(client: ClientTarget, transport: str, argv: tuple[str, ...]) -> str | None:
    text = " ".join(argv)
    needed = NEEDED_PLACEHOLDERS[transport]
    if not any(p in text for p in needed):
        return f"the command never mentions {' or '.join(needed)}"
    if client.profile == "http" and not any(p in text for p in ("{url_path}", "{url}")):
        return "an http client command must take {url_path} or {url}"
    if client.protocol is not None:
        for placeholder in NOT_DECLARED_PLACEHOLDERS:
            if placeholder in text:
                return (f"{placeholder} means nothing to a client of the declared protocol "
                        f"{client.profile!r}: it sends its own requests (name any request "
                        "file in the command itself)")
    if client.output == "file" and "{out}" not in text:
        return "output = \"file\" needs {out} in the command"
    return None
