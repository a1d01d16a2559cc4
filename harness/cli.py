"""The ``sockspec`` command: run, list, targets, report.

``run`` is a thin layer over pytest: it checks the options up front (so bad
input gets one line and exit 2, never a traceback) and then hands the
catalogue to pytest with the sockspec plugin. Exit 0 when everything passed
(warnings included: a SHOULD, or a default threshold, missed), 1 when something
failed or could not run, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from harness.client_targets import load_target_file
from harness.errors import SockspecError, UsageError
from harness.measure.settings import check_environment as check_measurement_sizes
from harness.scenario import load_catalogue
from harness.selection import build_selection, check_workers, parse_ready_timeout
from harness.targets import TRANSPORTS
from reports.outputs import OutputError, check_outputs
from reports.results import ResultsFormatError

PYTEST_EXIT_TO_SOCKSPEC = {0: 0, 1: 1, 2: 1, 3: 1, 4: 2}


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing usage and exiting."""

    def error(self, message: str):
        raise UsageError(message)


def scenarios_dir() -> Path:
    spec = importlib.util.find_spec("scenarios")
    if spec is None or not spec.submodule_search_locations:
        raise SockspecError("the scenarios package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="sockspec", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)

    run = commands.add_parser("run", help="run scenarios against targets (pytest underneath)")
    run.add_argument("selectors", nargs="*", metavar="SCENARIO|FAMILY",
                     help="scenario ids or family names (default: all)")
    run.add_argument("--targets", metavar="FILE", help="targets TOML file")
    run.add_argument("--target", action="append", default=[], metavar="NAME",
                     help="target name (repeatable; default: all in --targets, else the references)")
    run.add_argument("--transport", action="append", default=[], choices=TRANSPORTS,
                     help="transport (repeatable; default: all the target supports)")
    run.add_argument("--server-cmd", metavar="CMD", help="ad-hoc server command template")
    run.add_argument("--client-cmd", metavar="CMD", help="ad-hoc client command template")
    run.add_argument("--connect", metavar="ADDRESS",
                     help="test a server already running at tcp:HOST:PORT or unix:PATH")
    run.add_argument("--root", metavar="DIR", help="document root of an http --connect server")
    run.add_argument("--allow-remote", action="store_true",
                     help="allow a --connect address outside loopback (load stays bounded)")
    run.add_argument("--profile", choices=["echo", "http"],
                     help="profile of --server-cmd, --client-cmd or --connect")
    run.add_argument("--isolate", action="store_true",
                     help="start each server in a network namespace of its own where only "
                     "loopback exists (needs root and `ip`)")
    run.add_argument("--json", metavar="PATH", help="write the results JSON")
    run.add_argument("--html", metavar="PATH", help="write the HTML report")
    run.add_argument("--junitxml", metavar="PATH", help="write JUnit XML")
    run.add_argument("-n", "--workers", metavar="N",
                     help="parallel workers (pytest-xdist), a number or 'auto'")
    run.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failure")
    run.add_argument("-v", "--verbose", action="store_true", help="one line per item")
    run.add_argument("--ready-timeout", type=parse_ready_timeout, default=10.0, metavar="S",
                     help="seconds a server may take to start accepting (default 10)")
    run.add_argument("--strict", action="store_true",
                     help="a failed SHOULD check is a failure, not a warning")
    run.add_argument("--threshold", action="append", default=[], metavar="METRIC<=N",
                     help="your threshold for a measurement figure, e.g. latency.p99_ms<=5 "
                     "(repeatable; a miss fails; see `sockspec list --thresholds`)")
    capture = run.add_mutually_exclusive_group()
    capture.add_argument("--capture", action="store_true",
                         help="keep a pcap of every TCP scenario (default: of failed ones)")
    capture.add_argument("--no-capture", action="store_true",
                         help="capture no packets at all")
    run.add_argument("--capture-dir", metavar="DIR",
                     help="where pcap files go (default: pcaps/ next to --json or --html)")
    run.epilog = "Arguments after '--' go to pytest unchanged."

    listing = commands.add_parser("list", help="list every scenario")
    listing.add_argument("--family", help="only this family")
    listing.add_argument("--kind", choices=["server", "client"],
                         help="only the scenarios judging servers, or only those judging clients")
    listing.add_argument("--levels", action="store_true",
                         help="each scenario's level (MUST or SHOULD) and why")
    listing.add_argument("--thresholds", action="store_true",
                         help="the measurement figures thresholds may judge, with defaults")

    targets = commands.add_parser("targets", help="validate and list a targets file")
    targets.add_argument("file")

    commands.add_parser(
        "bench", add_help=False,
        help="compare sockspec with the C baselines and sockperf (options: bench --help)")

    commands.add_parser(
        "clean", help="remove the temporary directories and network namespaces of sockspec "
        "runs that were killed (their process is gone); print each one removed")

    report = commands.add_parser("report", help="render results JSON as HTML")
    report.add_argument("results", nargs="+", metavar="RESULTS.json",
                        help="one results file, or two (old new) to compare")
    report.add_argument("-o", "--output", required=True, metavar="HTML")
    report.add_argument("--bench", metavar="BENCH.json",
                        help="also show a benchmark file written by `sockspec bench`")
    return parser


def command_run(args: argparse.Namespace) -> int:
    check_workers(args.workers)  # a number up to 4 per CPU, or 'auto'
    check_measurement_sizes()  # SOCKSPEC_* sizes beyond this host's limits: one line, exit 2
    selection = build_selection(
        targets_file=args.targets, target_names=args.target, transports=args.transport,
        server_cmd=args.server_cmd, profile=args.profile, scenarios=args.selectors,
        catalogue=load_catalogue(), cwd=os.getcwd(), connect=args.connect, root=args.root,
        allow_remote=args.allow_remote, client_cmd=args.client_cmd,
        thresholds=args.threshold,
    )
    print_warnings(selection.warnings)
    # Every output is checked before the first item runs: one line, exit 2.
    check_outputs([("--json", args.json), ("--html", args.html),
                   ("--junitxml", args.junitxml)])
    pytest_args = [str(scenarios_dir()), "-p", "harness.pytest_plugin", "-p", "no:cacheprovider",
                   "--ready-timeout", str(args.ready_timeout), "-rfE"]
    pytest_args += ["-v"] if args.verbose else ["-q"]
    paths = {"--targets": args.targets, "--sockspec-json": args.json,
             "--sockspec-html": args.html, "--junitxml": args.junitxml}
    for option, value in paths.items():
        if value:
            pytest_args += [option, os.path.abspath(value)]
    if args.server_cmd:
        pytest_args += ["--server-cmd", args.server_cmd, "--profile", args.profile]
    if args.client_cmd:
        pytest_args += ["--client-cmd", args.client_cmd, "--profile", args.profile]
    if args.connect:
        pytest_args += ["--connect", args.connect, "--profile", args.profile]
        pytest_args += ["--root", os.path.abspath(args.root)] if args.root else []
    if args.allow_remote:
        pytest_args.append("--allow-remote")
    if args.isolate:
        from harness.isolate import unavailable_reason

        reason = unavailable_reason()  # not root, no `ip`: one line, exit 2
        if reason:
            raise UsageError(reason)
        pytest_args.append("--isolate")
    if args.strict:
        pytest_args.append("--sockspec-strict")
    for threshold in args.threshold:
        pytest_args.append(f"--threshold={threshold}")
    if args.capture or args.no_capture:
        pytest_args += ["--sockspec-capture", "all" if args.capture else "off"]
    if args.capture_dir:
        pytest_args += ["--sockspec-capture-dir", os.path.abspath(args.capture_dir)]
    for name in args.target:
        pytest_args += ["--target", name]
    for transport in args.transport:
        pytest_args += ["--transport", transport]
    for selector in args.selectors:
        pytest_args += ["--scenario", selector]
    if args.workers:
        pytest_args += ["-n", args.workers]
    if args.exitfirst:
        pytest_args.append("-x")
    pytest_args += args.pytest_args
    if not selection.targets and not selection.clients:
        raise UsageError("no target selected")

    import pytest

    from harness.interrupts import SignalGuard, exit_status, signal_name

    # SIGINT, SIGTERM, SIGHUP: the run stops, stops its servers, writes what finished
    # (marked interrupted) and exits as a shell reports that signal: 130, 143, 129.
    guard = SignalGuard()
    status = int(pytest.main(pytest_args, plugins=[guard]))
    if guard.stopped_by is not None:
        print(f"sockspec: stopped by {signal_name(guard.stopped_by)}; the results of what "
              "finished are marked interrupted", file=sys.stderr)
        return exit_status(guard.stopped_by)
    if status == 5:
        print("sockspec: nothing to run: no scenario applies to the chosen targets and "
              "transports", file=sys.stderr)
        return 2
    return PYTEST_EXIT_TO_SOCKSPEC.get(status, 1)


def command_list(args: argparse.Namespace) -> int:
    specs = load_catalogue()
    if args.kind:
        specs = [s for s in specs if s.kind == args.kind]
    if args.family:
        specs = [s for s in specs if s.family.name == args.family]
        if not specs:
            raise UsageError(f"no family named {args.family!r}")
    if args.thresholds:
        return list_thresholds(specs)
    width = max(len(s.id) for s in specs)
    fam_width = max(len(s.family.name) for s in specs)
    if args.levels:
        for spec in specs:
            print(f"{spec.id:<{width}}  {spec.family.name:<{fam_width}}  {spec.level:<6}  "
                  f"{spec.reason}")
        return 0
    for spec in specs:
        profiles = ",".join(spec.profiles)
        print(f"{spec.id:<{width}}  {spec.family.name:<{fam_width}}  {profiles:<9}  "
              f"{spec.description}")
    return 0


def list_thresholds(specs) -> int:
    """One line per measurement figure: its name, unit, default threshold, results key."""
    from harness.scenario import catalogue_measures
    from harness.thresholds import describe_default

    measures = catalogue_measures(specs)
    if not measures:
        raise UsageError("no measurement family among the chosen scenarios")
    width = max(len(name) for name in measures)
    for name, measure in sorted(measures.items()):
        print(f"{name:<{width}}  {measure.unit:<6}  default {describe_default(measure):<20}  "
              f"metrics key {measure.metric}" + (f"  ({measure.note})" if measure.note else ""))
    return 0


def print_warnings(warnings) -> None:
    for warning in warnings:
        print(f"sockspec: warning: {warning}", file=sys.stderr)


def command_targets(args: argparse.Namespace) -> int:
    from harness.errors import TargetConfigError
    from harness.scenario import catalogue_measures
    from harness.thresholds import resolve_names

    declared = load_target_file(args.file)
    print_warnings(declared.warnings)
    measures = catalogue_measures(load_catalogue())
    thresholds = [resolve_names(t.thresholds, measures, TargetConfigError)
                  for t in declared.servers]  # every name checked before anything is listed
    for target, own in zip(declared.servers, thresholds, strict=True):
        transports = ",".join(target.transports())
        print(f"{target.name}  profile={target.profile}  transports={transports}")
        for threshold in own:
            print(f"  threshold: {threshold.expression()}")
        for label, argv in (("tcp", target.tcp), ("unix", target.unix)):
            if argv:
                print(f"  {label}: {' '.join(argv)}")
    for client in declared.clients:
        transports = ",".join(client.transports())
        print(f"{client.name}  client  profile={client.profile}  transports={transports}  "
              f"output={client.output}  success={client.success_status}  "
              f"failure={client.describe_failure_statuses()}  timeout_s={client.timeout_s:g}")
        for label, argv in (("tcp", client.tcp), ("unix", client.unix)):
            if argv:
                print(f"  {label}: {' '.join(argv)}")
    return 0


def command_report(args: argparse.Namespace) -> int:
    from reports.html import write_report_files

    if len(args.results) > 2:
        raise UsageError("report takes one results file, or two (old new) to compare")
    check_outputs([("-o", args.output)], inputs=[*args.results, args.bench])
    write_report_files(args.results, args.output, bench_path=args.bench)
    print(os.path.abspath(args.output))
    return 0


def command_clean(args: argparse.Namespace) -> int:
    from harness.cleanup import remove_leftovers

    removed = remove_leftovers()
    for line in removed:
        print(f"removed {line}")
    if not removed:
        print("nothing to remove")
    return 0


def command_bench(args: argparse.Namespace) -> int:
    from harness.measure.bench import main as bench_main

    return bench_main(args.bench_args)


COMMANDS = {"run": command_run, "list": command_list, "targets": command_targets,
            "report": command_report, "bench": command_bench, "clean": command_clean}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # Everything after "--" belongs to pytest; argparse must not see it.
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    if own[:1] == ["bench"]:  # the benchmark has its own options
        return command_bench(argparse.Namespace(bench_args=own[1:] + extra))
    try:
        args = build_parser().parse_args(own)
        args.pytest_args = extra
        return COMMANDS[args.command](args)
    except SockspecError as exc:
        print(f"sockspec: {exc}", file=sys.stderr)
        return exc.exit_status
    except ResultsFormatError as exc:
        print(f"sockspec: {exc}", file=sys.stderr)
        return 2
    except OutputError as exc:  # 2 when found up front, 1 when a late write failed
        print(f"sockspec: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("sockspec: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `sockspec list | head`: the reader left. Say nothing more on stdout (the
        # interpreter would flush into the closed pipe again at exit).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 1


if __name__ == "__main__":
    sys.exit(main())
