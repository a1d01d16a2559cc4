#!/usr/bin/env python3
"""Rerun every ``reproduce`` command of a results JSON; each must run exactly its item again.

    python examples/rerun_reproduce.py RESULTS.json [--cwd DIR]

What a user does with a failed item's command, done for all of them (the
example project's check in ``tox -e example``). Exit 0 when every rerun ran
exactly its own (scenario, target, transport) with the same outcome.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--cwd", type=Path, default=Path.cwd(),
                        help="where the run was started (default: here)")
    args = parser.parse_args()
    records = json.loads(args.results.read_text())["results"]
    if not records:
        print("rerun_reproduce: no results to rerun", file=sys.stderr)
        return 1
    for record in records:
        with tempfile.TemporaryDirectory(prefix="sockspec-rerun-") as tmp:
            out = Path(tmp) / "r.json"
            command = [*shlex.split(record["reproduce"]), "--json", str(out)]
            subprocess.run(command, cwd=args.cwd, capture_output=True, timeout=600,
                           stdin=subprocess.DEVNULL)
            rerun = json.loads(out.read_text())["results"] if out.exists() else []
        want = [(record["scenario"], record["target"], record["transport"], record["outcome"])]
        got = [(r["scenario"], r["target"], r["transport"], r["outcome"]) for r in rerun]
        if got != want:
            print(f"rerun_reproduce: {record['reproduce']!r} ran {got}, wanted {want}",
                  file=sys.stderr)
            return 1
        print(f"reran: {record['reproduce']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
