"""Shared by the packet tests: run `sockspec run` with its outputs kept in a directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sockspec_runner import PROJECT, every_level_required, server_cmd

RUN_TIMEOUT_S = 300


def sockspec_run(directory: Path, *args: str) -> list[dict]:
    """`sockspec run --json DIR/results.json ARGS`; the results, with pcaps left in DIR.
    SHOULD checks and default thresholds count as requirements (every_level_required)."""
    json_path = directory / "results.json"
    proc = subprocess.run([sys.executable, "-m", "sockspec", "run", "--json", str(json_path),
                           *every_level_required(), *args], cwd=PROJECT, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S, stdin=subprocess.DEVNULL)
    assert json_path.exists(), proc.stderr[-2000:]
    return json.loads(json_path.read_text())["results"]


def faulty_cmd(name: str, profile: str, transport: str = "tcp") -> list[str]:
    """--server-cmd arguments for fixtures/faulty/NAME.py over ``transport``."""
    return [*server_cmd(PROJECT / "fixtures" / "faulty" / f"{name}.py", profile, transport),
            "--transport", transport]
