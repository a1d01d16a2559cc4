"""The benchmark: sockspec's measurements against C baselines and sockperf, same machine, same run.

    python -m sockspec.measure.bench [--runs 5] [--output out/bench.json] [--only NAME ...]

Each comparison alternates sockspec and its baseline ``--runs`` times and
compares the medians; the ratio is sockspec / baseline, judged against a goal
(``<= 1.05`` for a time, ``>= 0.9`` for a rate). Results go to a JSON file
(schema sockspec.bench/1) that the HTML report can show, and a table is printed.
The C baselines are compiled from shared/bench into a temporary directory.
Pinned comparisons put client and server on the same CPU (PIN_CPU): a round
trip between two vCPUs costs ~55 µs here against ~12 µs on one, and unpinned
runs are bimodal (shared/bench/RESULTS.md, noise).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from sockspec.errors import SockspecError, UsageError
from sockspec.measure.bench import baselines
from sockspec.measure.bench.cases import CASES, BenchContext
from sockspec.measure.bench.report import document, table
from sockspec.reports.outputs import OutputError, check_outputs, write_output
from sockspec.under_test.ports import PortAllocator


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sockspec.measure.bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per side (median; default 5)")
    parser.add_argument("--output", default="out/bench.json", help="JSON results file")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only this comparison (repeatable): " + ", ".join(CASES))
    parser.add_argument("--baselines", type=Path, default=None,
                        help="directory of the C baseline sources (default ../shared/bench)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        raise UsageError(f"--runs must be at least 1, not {args.runs}")
    unknown = sorted(set(args.only) - set(CASES))
    if unknown:
        raise UsageError(f"unknown comparison(s) {unknown}; choose from {', '.join(CASES)}")
    check_outputs([("--output", args.output)])  # before minutes of measuring: exit 2
    return args


def run(args: argparse.Namespace) -> dict:
    if len(os.sched_getaffinity(0)) < 2:
        raise baselines.BenchError("the benchmark needs 2 CPUs (it pins to CPU 1)")
    source_dir = args.baselines or baselines.default_source_dir()
    comparisons, skipped = [], {}
    with tempfile.TemporaryDirectory(prefix="ss-bench-") as work:
        binaries = baselines.build(source_dir, Path(work))
        context = BenchContext(binaries, Path(work), PortAllocator(), args.runs)
        for name, case in CASES.items():
            if args.only and name not in args.only:
                continue
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            try:
                comparisons.append(case(context))
            except baselines.BenchError as exc:
                skipped[name] = str(exc)
    return document(comparisons, args.runs, skipped)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
        doc = run(args)
    except (SockspecError, OutputError) as exc:
        print(f"sockspec bench: {exc}", file=sys.stderr)
        return exc.exit_status
    for line in table(doc):  # the table first: it survives an output that cannot be written
        print(line)
    try:
        write_output(args.output, json.dumps(doc, indent=2) + "\n", label="--output")
    except OutputError as exc:
        print(f"sockspec bench: {exc}", file=sys.stderr)
        return exc.exit_status
    print(f"written: {os.path.abspath(args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
