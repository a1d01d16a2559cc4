"""The one table of sockspec's run options: the pytest plugin and ``sockspec run`` both
declare theirs from it, and ``sockspec run`` turns its own into the pytest ones with it.

Cheap to import (no sockspec module beyond ``sockspec.targets``' constants): the
plugin's entry point imports it in every pytest session.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sockspec.targets import TRANSPORTS

CAPTURE_MODES = ("failures", "all", "off")


def parse_ready_timeout(text: str) -> float:
    """``--ready-timeout S``: sockspec.targets.selection.parse_ready_timeout, imported only
    when the option is given (this module stays cheap to import)."""
    from sockspec.targets.selection import parse_ready_timeout as parse

    return parse(text)


def parse_toxic_seed(text: str) -> int:
    """``--toxic-seed N``: sockspec.toxics.spec.parse_seed, imported only when given."""
    from sockspec.toxics.spec import parse_seed

    return parse_seed(text)


def parse_time_scale(text: str) -> float:
    """``--time-scale F``: sockspec.scenario_files.steps.parse_time_scale, imported only
    when the option is given."""
    from sockspec.errors import UsageError
    from sockspec.scenario_files.steps import parse_time_scale as parse

    try:
        return parse(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("the time scale ")) from None


@dataclass(frozen=True)
class Option:
    """One option: its pytest flag, its ``sockspec run`` flag (None: pytest only)."""

    pytest_flag: str
    cli_flag: str | None
    kwargs: dict[str, Any] = field(default_factory=dict)
    path: bool = False          # a file or directory: made absolute before pytest sees it

    @property
    def dest(self) -> str:
        """The pytest dest (``config.getoption(dest)``)."""
        return self.pytest_flag.lstrip("-").replace("-", "_")

    @property
    def cli_dest(self) -> str:
        return (self.cli_flag or self.pytest_flag).lstrip("-").replace("-", "_")


OPTIONS: tuple[Option, ...] = (
    Option("--targets", "--targets", dict(
        metavar="FILE", help="targets TOML file of [[server]] and [[client]] tables"), path=True),
    Option("--target", "--target", dict(
        action="append", default=[], metavar="NAME",
        help="run against this server or client target (repeatable; default: every target "
        "in --targets, else the reference servers and clients)")),
    Option("--transport", "--transport", dict(
        action="append", default=[], choices=list(TRANSPORTS),
        help="transport to use (repeatable; default: all a target supports)")),
    Option("--server-cmd", "--server-cmd", dict(
        metavar="CMD",
        help="ad-hoc server under test: a command with {host} {port} {hostport} {path} {root}")),
    Option("--client-cmd", "--client-cmd", dict(
        metavar="CMD", help="ad-hoc client under test: a command with {host} {port} "
        "{hostport} {path} {in} {out} {url_path} {url}")),
    Option("--connect", "--connect", dict(
        metavar="ADDRESS",
        help="a server already running at tcp:HOST:PORT or unix:PATH (not managed)")),
    Option("--root", "--root", dict(
        metavar="DIR", help="document root of an http --connect server"), path=True),
    Option("--allow-remote", "--allow-remote", dict(
        action="store_true",
        help="allow a --connect address outside loopback (load stays bounded)")),
    Option("--profile", "--profile", dict(
        metavar="PROFILE", help="profile of --server-cmd, --client-cmd or --connect: "
        "echo, http or a protocol of --protocols")),
    Option("--protocols", "--protocols", dict(
        action="append", default=[], metavar="FILE",
        help="a file of [[protocol]] declarations for --profile (repeatable)"), path=True),
    Option("--scenario", None, dict(
        action="append", default=[], metavar="ID|FAMILY",
        help="run only this scenario or family (repeatable)")),
    Option("--ready-timeout", "--ready-timeout", dict(
        type=parse_ready_timeout, default=10.0, metavar="S",
        help="seconds a server may take to accept its first connection (default 10)")),
    Option("--time-scale", "--time-scale", dict(
        type=parse_time_scale, default=None, metavar="F",
        help="multiply every timeout, pause and silence of scenario files by F (default: "
        "SOCKSPEC_TIME_SCALE, else 1); for slow machines")),
    Option("--isolate", "--isolate", dict(
        action="store_true",
        help="start each server target in a network namespace of its own where only "
        "loopback exists (needs root and `ip`)")),
    Option("--toxic", "--toxic", dict(
        action="append", default=[], metavar="SPEC",
        help="put toxics between the harness and each program under test, e.g. "
        "latency:ms=50,jitter=10 or slow-link (repeatable: each is one more profile in "
        "the matrix; replaces the targets file's [[toxic]] tables)")),
    Option("--toxic-seed", "--toxic-seed", dict(
        type=parse_toxic_seed, default=None, metavar="N",
        help="seed of the toxics' random draws (default: derived from the toxics)")),
    # pytest has a --strict of its own (strict markers and config): ours is prefixed.
    Option("--sockspec-strict", "--strict", dict(
        action="store_true",
        help="a SHOULD check that fails is a failure, not a warning")),
    Option("--threshold", "--threshold", dict(
        action="append", default=[], metavar="METRIC<=N",
        help="your threshold for a measurement figure, e.g. latency.p99_ms<=5 "
        "(repeatable; a miss is a failure; see `sockspec list --thresholds`)")),
    Option("--sockspec-json", "--json", dict(metavar="PATH", help="write the results JSON here"),
           path=True),
    Option("--sockspec-html", "--html", dict(metavar="PATH", help="write the HTML report here"),
           path=True),
    Option("--sockspec-capture", None, dict(
        choices=list(CAPTURE_MODES), default="failures",
        help="capture TCP scenarios' packets on lo and keep the pcap of failed ones "
        "(failures, the default), of every one (all), or capture nothing (off)")),
    Option("--sockspec-capture-dir", "--capture-dir", dict(
        metavar="DIR", help="where pcap files go (default: pcaps/ next to the results JSON "
        "or HTML)"), path=True),
    Option("--sockspec-catalogue", "--with-catalogue", dict(
        action="store_true",
        help="also run the built-in scenario catalogue (sockspec run without a PATH always "
        "does)")),
)
BY_DEST = {option.dest: option for option in OPTIONS}


def add_pytest_options(parser) -> None:
    """Declare every option on pytest's parser (the plugin's pytest_addoption)."""
    group = parser.getgroup("sockspec", "sockspec conformance harness")
    for option in OPTIONS:
        group.addoption(option.pytest_flag, dest=option.dest, **option.kwargs)


def add_cli_options(parser: argparse.ArgumentParser) -> None:
    """Declare the options ``sockspec run`` shares with the plugin."""
    for option in OPTIONS:
        if option.cli_flag:
            parser.add_argument(option.cli_flag, dest=option.cli_dest, **option.kwargs)


def pytest_args(args: argparse.Namespace) -> list[str]:
    """The pytest arguments that carry the shared options of a parsed ``sockspec run``."""
    out: list[str] = []
    for option in OPTIONS:
        if not option.cli_flag:
            continue
        value = getattr(args, option.cli_dest)
        if value in (None, False, []) or value == option.kwargs.get("default"):
            continue
        for one in value if isinstance(value, list) else [value]:
            if one is True:
                out.append(option.pytest_flag)
            else:
                out += [option.pytest_flag, os.path.abspath(one) if option.path else str(one)]
    return out


def given(config) -> Iterator[str]:
    """The sockspec options this pytest session was given (set to a non-default value)."""
    for option in OPTIONS:
        value = config.getoption(option.dest, None)
        if value not in (None, False, []) and value != option.kwargs.get("default"):
            yield option.pytest_flag
