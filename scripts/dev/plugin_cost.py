#!/usr/bin/env python3
"""What sockspec's pytest plugin costs a pytest session that does not use it.

    python scripts/dev/plugin_cost.py [--runs 21]

Runs one trivial test file with the venv's pytest, alternately with the plugin
disabled (``-p no:sockspec``) and as installed, and prints the median wall time
of each and their difference (the plugin's cost: importing ``sockspec.plugin``
and declaring its options). Also prints what the session imported from sockspec
(it must be only ``sockspec``, ``sockspec.plugin``, ``sockspec.plugin.options``
and ``sockspec.targets``). The budget is 50 ms (README, "Writing your own scenarios").
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEST = '''
import sys

def test_unrelated():
    assert 1 + 1 == 2

def test_report_modules():
    loaded = sorted(m for m in sys.modules if m == "sockspec" or m.startswith("sockspec."))
    print("SOCKSPEC-MODULES", ",".join(loaded))
'''


def run(directory: Path, extra: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                           *extra, "test_unrelated.py"], cwd=directory, capture_output=True,
                          text=True, timeout=120)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"pytest failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    modules = next((line.split("SOCKSPEC-MODULES ", 1)[1] for line in done.stdout.splitlines()
                    if "SOCKSPEC-MODULES " in line), "")
    return elapsed, modules


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sockspec-plugin-cost-") as tmp:
        directory = Path(tmp)
        (directory / "test_unrelated.py").write_text(TEST)
        run(directory, [])  # warm the file cache and the bytecode
        without, with_plugin, modules = [], [], ""
        for _ in range(args.runs):
            without.append(run(directory, ["-p", "no:sockspec"])[0])
            elapsed, modules = run(directory, [])
            with_plugin.append(elapsed)
    off, on = statistics.median(without), statistics.median(with_plugin)
    print(f"without the plugin: median {off * 1000:.1f} ms over {args.runs} runs")
    print(f"with the plugin:    median {on * 1000:.1f} ms over {args.runs} runs")
    print(f"plugin cost:        {(on - off) * 1000:+.1f} ms (budget 50 ms)")
    print(f"sockspec modules imported: {modules or '(none)'}")
    # The same cost without the noise of whole sessions: importing the entry point's
    # module once pytest itself is imported (what a session adds), median of fresh processes.
    probe = ("import time, pytest; t = time.perf_counter(); import sockspec.plugin; "
             "print(time.perf_counter() - t)")
    imports = [float(subprocess.run([sys.executable, "-c", probe], capture_output=True,
                                    text=True, timeout=60, check=True).stdout)
               for _ in range(args.runs)]
    print(f"import sockspec.plugin after pytest: median {statistics.median(imports) * 1000:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
