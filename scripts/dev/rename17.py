#!/usr/bin/env python3
"""Rewrite imports from the old top-level names to the one package, ``sockspec`` (issue 17).

    python scripts/dev/rename17.py [PATH ...]     (default: the whole repository)

The repository keeps its folders (harness/, scenarios/, reports/, fixtures/);
pyproject maps them to ``sockspec``, ``sockspec.scenarios`` and
``sockspec.reports``. This script rewrites what still uses the old names:

- ``harness.x.y`` -> ``sockspec.x.y``, following the modules moved by the
  regrouping (MOVED below: ``harness.pytest_plugin`` -> ``sockspec.plugin.session``, ...);
- ``reports.x`` -> ``sockspec.reports.x``, ``scenarios.x`` -> ``sockspec.scenarios.x``;
- ``fixtures.scenario_fixtures`` -> ``sockspec.plugin.fixtures``;
- ``fixtures.faulty.x`` (inside fixtures/faulty, run as scripts) -> the sibling ``x``;
- ``python -m harness`` and ``"-m", "harness"`` -> ``sockspec``.

Idempotent: run it again after merging a branch that still uses the old names.
Prints each file it changed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Old dotted module -> new dotted module (the regrouping of issue 17).
MOVED = {
    "harness.pytest_plugin": "sockspec.plugin.session",
    "harness.pytest_stash": "sockspec.plugin.stash",
    "harness.packets.plugin": "sockspec.plugin.capture",
    "fixtures.scenario_fixtures": "sockspec.plugin.fixtures",
    "harness.scenario": "sockspec.catalogue",
    "harness.targets": "sockspec.targets.servers",
    "harness.client_targets": "sockspec.targets.clients",
    "harness.selection": "sockspec.targets.selection",
    "harness.servers": "sockspec.under_test.server",
    "harness.clients": "sockspec.under_test.client",
    "harness.allocate": "sockspec.under_test.ports",
    "harness.client_verdict": "sockspec.verdict.client",
    "harness.measure.bench_cases": "sockspec.measure.bench.cases",
    "harness.measure.bench_report": "sockspec.measure.bench.report",
    "harness.measure.baselines": "sockspec.measure.bench.baselines",
}
# First components that name a module of the old top-level packages (prose such as
# "the harness." is left alone: only these are rewritten).
HARNESS_NAMES = {
    "__main__", "adversary", "allocate", "cli", "client_targets", "client_verdict", "clients",
    "drivers", "errors", "iproute", "measure", "packets", "process", "protocol",
    "pytest_plugin", "pytest_stash", "reference", "scenario", "selection", "servers",
    "targets", "transport", "verdict",
}
REPORTS_NAMES = {"bench", "charts", "compare", "html", "measurements", "results", "view"}
SUFFIXES = {".py", ".md", ".ini", ".toml", ".sh", ".cfg", ".txt", ".j2"}
SKIP_DIRS = {".git", ".venv", ".tox", "__pycache__", "node_modules", "out", "build", "dist"}
SKIP_FILES = {"scripts/dev/rename17.py"}


def module_names(folder: str) -> set[str]:
    """The modules and packages in a folder of the repository as it is now."""
    return {p.stem for p in (ROOT / folder).iterdir()
            if (p.suffix == ".py" or (p / "__init__.py").exists()) and p.stem != "__init__"}


def scenario_names() -> set[str]:
    return {p.stem for p in (ROOT / "scenarios").glob("*.py") if not p.name.startswith("_")}


def new_name(old: str) -> str:
    """The new dotted name of an old dotted module name (longest moved prefix first)."""
    parts = old.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in MOVED:
            return ".".join([MOVED[prefix], *parts[cut:]])
    top, rest = parts[0], parts[1:]
    if top == "harness":
        return ".".join(["sockspec", *rest])
    if top in ("reports", "scenarios"):
        return ".".join(["sockspec", top, *rest])
    return old


def _dotted(top: str, names: set[str]) -> re.Pattern:
    alternatives = "|".join(sorted(names, key=len, reverse=True))
    return re.compile(rf"(?<![\w./-]){top}\.(?:{alternatives})\b(?:\.\w+)*")


def rewrite(text: str, path: Path) -> str:
    rel = path.relative_to(ROOT).as_posix()
    if rel.startswith("fixtures/faulty/"):
        text = re.sub(r"^from fixtures\.faulty import (\w+)( as \w+)?$",
                      lambda m: f"import {m[1]}{m[2] or ''}", text, flags=re.M)
        text = re.sub(r"^from fixtures\.faulty\.(\w+) import", r"from \1 import", text,
                      flags=re.M)
    # "from harness.measure import baselines": the imported name may itself have moved.
    def from_import(m: re.Match) -> str:
        package, name, alias = m[1], m[2], m[3] or ""
        full = f"{package}.{name}"
        moved = new_name(full)
        if moved != f"{new_name(package)}.{name}":
            parent, _, leaf = moved.rpartition(".")
            alias = alias or (f" as {name}" if leaf != name else "")
            return f"from {parent} import {leaf}{alias}"
        return f"from {new_name(package)} import {name}{alias}"

    text = re.sub(r"^(\s*)from ((?:harness|reports|scenarios)(?:\.\w+)*) import (\w+)( as \w+)?$",
                  lambda m: m[1] + from_import(_Shift(m)), text, flags=re.M)

    # "from harness.measure import baselines, latency": one line per moved name.
    def split_moved(m: re.Match) -> str:
        indent, package, names = m[1], m[2], [n.strip() for n in m[3].split(",")]
        moved = [n for n in names if new_name(f"{package}.{n}") != f"{new_name(package)}.{n}"]
        if not moved:
            return m[0]
        kept = [n for n in names if n not in moved]
        lines = [f"{indent}from {package} import {', '.join(kept)}"] if kept else []
        for name in moved:
            parent, _, leaf = new_name(f"{package}.{name}").rpartition(".")
            lines.append(f"{indent}from {parent} import {leaf}"
                         + (f" as {name}" if leaf != name else ""))
        return "\n".join(lines)

    text = re.sub(r"^(\s*)from ((?:harness|reports|scenarios)(?:\.\w+)*) import "
                  r"(\w+(?:, \w+)+)$", split_moved, text, flags=re.M)
    text = re.sub(r"^(\s*)from (harness|reports|scenarios)((?:\.\w+)*) import ",
                  lambda m: f"{m[1]}from {new_name(m[2] + m[3])} import ", text, flags=re.M)
    text = re.sub(r"^(\s*)import (harness|reports|scenarios)((?:\.\w+)*)$",
                  lambda m: f"{m[1]}import {new_name(m[2] + m[3])}", text, flags=re.M)
    for top, names in (("harness", HARNESS_NAMES | module_names("harness")),
                       ("reports", REPORTS_NAMES | module_names("reports")),
                       ("scenarios", scenario_names())):
        text = _dotted(top, names).sub(lambda m: new_name(m[0]), text)
    text = re.sub(r"\bfixtures\.scenario_fixtures\b", MOVED["fixtures.scenario_fixtures"], text)
    text = re.sub(r"-m harness\b(?!/)", "-m sockspec", text)
    text = re.sub(r"""(["'])-m\1, (["'])harness\2""", r"\1-m\1, \2sockspec\2", text)
    return text


class _Shift:
    """m[1..3] of from_import are groups 2..4 of the statement pattern."""

    def __init__(self, m: re.Match) -> None:
        self.m = m

    def __getitem__(self, index: int) -> str | None:
        return self.m[index + 1]


def files(paths: list[Path]):
    for base in paths:
        if base.is_file():
            yield base
            continue
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(ROOT)
            if any(part in SKIP_DIRS for part in rel.parts) or rel.as_posix() in SKIP_FILES:
                continue
            if path.is_file() and (path.suffix in SUFFIXES or rel.parts[:1] in (("scripts",),
                                                                                (".ci",))):
                yield path


def main(argv: list[str]) -> int:
    paths = [Path(a).resolve() for a in argv] or [ROOT]
    for path in files(paths):
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        new = rewrite(text, path)
        if new != text:
            path.write_text(new)
            print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
