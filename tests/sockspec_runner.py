"""Run `sockspec run` in a subprocess and read back its results JSON."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


@dataclass
class RunOutcome:
    status: int
    stdout: str
    stderr: str
    document: dict | None

    def outcomes(self) -> dict[tuple[str, str], str]:
        """(scenario, transport) -> outcome."""
        return {(r["scenario"], r["transport"]): r["outcome"]
                for r in (self.document or {}).get("results", [])}

    def by_family(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for r in (self.document or {}).get("results", []):
            found.setdefault(r["family"], set()).add(r["outcome"])
        return found

    def results(self, **match: str) -> list[dict]:
        return [r for r in (self.document or {}).get("results", [])
                if all(r.get(k) == v for k, v in match.items())]


def every_level_required() -> list[str]:
    """`--strict` and every default threshold given as the user's: each SHOULD check and
    each documented default limit is then a requirement, so a faulty server fails its
    family (rather than warning), as every proof here expects. tests/test_levels.py and
    tests/test_thresholds.py check the default levels (warnings) themselves."""
    from sockspec.catalogue import catalogue_measures, load_catalogue

    args = ["--strict"]
    for name, measure in sorted(catalogue_measures(load_catalogue()).items()):
        if measure.default is not None:
            op, value = measure.default
            args.append(f"--threshold={name}{op}{value:g}")
    return args


def run_sockspec(*args: str, timeout: float = 600, required: bool = False) -> RunOutcome:
    """`sockspec run ARGS`; with ``required``, every level counts (every_level_required())."""
    levels = every_level_required() if required else []
    with tempfile.TemporaryDirectory(prefix="sockspec-test-") as tmp:
        json_path = os.path.join(tmp, "results.json")
        proc = subprocess.run(
            [sys.executable, "-m", "sockspec", "run", "--json", json_path, *levels, *args],
            cwd=PROJECT, capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        document = json.loads(Path(json_path).read_text()) if os.path.exists(json_path) else None
    return RunOutcome(proc.returncode, proc.stdout, proc.stderr, document)


def server_cmd(script: Path, profile: str, transport: str) -> list[str]:
    """--server-cmd arguments for a fixture server following the reference contract."""
    address = "-u {path}" if transport == "unix" else "-h {host} -p {port}"
    root = " -r {root}" if profile == "http" else ""
    command = f"{sys.executable} {script} --profile {profile} {address}{root}"
    return ["--server-cmd", command, "--profile", profile]


FAULTY_DIR = PROJECT / "fixtures" / "faulty"


def faulty_programs(kind: str) -> list[tuple[str, Path, object]]:
    """(name, path, DEFECT) of every faulty fixture of ``kind`` ("server" or "client")."""
    found = []
    # The faulty programs run as scripts and import their siblings (_defect, ...) by name.
    if str(FAULTY_DIR) not in sys.path:
        sys.path.insert(0, str(FAULTY_DIR))
    for path in sorted(FAULTY_DIR.glob("*.py")):
        if path.name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"faulty_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if module.DEFECT.kind == kind:
            found.append((path.stem, path, module.DEFECT))
    return found
