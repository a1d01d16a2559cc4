"""The ``sockspec`` command: run, list, targets, report.

``run`` is a thin layer over pytest: it checks the options up front (so bad
input gets one line and exit 2, never a traceback), makes the run's selection
once, and hands the scenarios (the built-in catalogue, or the user's test
modules given as PATH arguments) to pytest, whose sockspec plugin takes the
selection from it. Its options come from the plugin's table
(sockspec.plugin.options). Exit 0 when everything passed (warnings included: a
SHOULD, or a default threshold, missed), 1 when something
failed or could not run, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sockspec.catalogue import catalogue_directory, families
from sockspec.errors import SockspecError, UsageError
from sockspec.measure.settings import check_environment as check_measurement_sizes
from sockspec.plugin import options
from sockspec.reports.outputs import OutputError, check_outputs
from sockspec.reports.results import ResultsFormatError
from sockspec.scenario_files.collect import load_all
from sockspec.targets.clients import load_target_file
from sockspec.targets.selection import build_selection, check_scenario_names, check_workers

PYTEST_EXIT_TO_SOCKSPEC = {0: 0, 1: 1, 2: 1, 3: 1, 4: 2}


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing usage and exiting."""

    def error(self, message: str):
        raise UsageError(message)


def scenarios_dir() -> Path:
    """The built-in catalogue's folder."""
    try:
        return catalogue_directory()
    except (ImportError, AttributeError, TypeError):
        raise SockspecError("the scenarios package is not installed") from None


def split_positionals(values: list[str]) -> tuple[list[str], list[str]]:
    """PATH arguments (an existing file or folder, or anything ending in .py or with a /)
    and SCENARIO|FAMILY selectors."""
    paths, selectors = [], []
    for value in values:
        looks_like_path = value.endswith((".py", ".sockspec")) or os.sep in value or \
            os.path.exists(value)
        (paths if looks_like_path else selectors).append(value)
    for path in paths:
        if not os.path.exists(path):
            raise UsageError(f"no such file or folder: {path}")
    return paths, selectors


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="sockspec", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)

    run = commands.add_parser("run", help="run scenarios against targets (pytest underneath)")
    run.add_argument("selectors", nargs="*", metavar="PATH|SCENARIO|FAMILY",
                     help="test modules, scenario files (*.sockspec) or folders with your own "
                     "scenarios, and scenario ids "
                     "or family names (default: the whole built-in catalogue)")
    options.add_cli_options(run)
    run.add_argument("--junitxml", metavar="PATH", help="write JUnit XML")
    run.add_argument("-n", "--workers", metavar="N",
                     help="parallel workers (pytest-xdist), a number or 'auto'")
    run.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failure")
    run.add_argument("-v", "--verbose", action="store_true", help="one line per item")
    capture = run.add_mutually_exclusive_group()
    capture.add_argument("--capture", action="store_true",
                         help="keep a pcap of every TCP scenario (default: of failed ones)")
    capture.add_argument("--no-capture", action="store_true",
                         help="capture no packets at all")
    run.epilog = "Arguments after '--' go to pytest unchanged."
    parser.run_parser = run

    listing = commands.add_parser("list", help="list every scenario")
    listing.add_argument("paths", nargs="*", metavar="PATH",
                         help="also (with --no-catalogue: only) the scenarios of these test "
                         "modules or folders")
    listing.add_argument("--no-catalogue", action="store_true",
                         help="leave the built-in catalogue out")
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
    paths, selectors = split_positionals(args.selectors)
    # Without a PATH the run is the built-in catalogue; with one, the catalogue only
    # when asked for (--with-catalogue).
    builtin = not paths or args.with_catalogue
    try:
        specs = load_all(paths, builtin=builtin, scale=args.time_scale)  # + scenario files
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    check_scenario_names(selectors, specs)
    # SOCKSPEC_* sizes the run's families declare, beyond this host's limits: one line, exit 2
    check_measurement_sizes(families(specs).values())
    selection = build_selection(
        targets_file=os.path.abspath(args.targets) if args.targets else None,
        target_names=args.target, transports=args.transport,
        server_cmd=args.server_cmd, profile=args.profile, scenarios=selectors,
        cwd=os.getcwd(), connect=args.connect, root=args.root,
        allow_remote=args.allow_remote, client_cmd=args.client_cmd,
        thresholds=args.threshold, catalogue=specs, protocol_files=args.protocols,
        toxic_specs=args.toxic, toxic_seed=args.toxic_seed,
    )
    if not selection.targets and not selection.clients:
        raise UsageError("no target selected")
    print_warnings(selection.warnings)
    # Every output is checked before the first item runs: one line, exit 2.
    check_outputs([("--json", args.json), ("--html", args.html),
                   ("--junitxml", args.junitxml)])
    pytest_args = [os.path.abspath(p) for p in paths]
    if not paths:
        pytest_args.append(str(scenarios_dir()))
    pytest_args += ["-p", "no:cacheprovider", "-rfE"]
    pytest_args += ["-v"] if args.verbose else ["-q"]
    pytest_args += options.pytest_args(args)
    if args.junitxml:
        pytest_args += ["--junitxml", os.path.abspath(args.junitxml)]
    if args.isolate:
        from sockspec.isolate import unavailable_reason

        reason = unavailable_reason()  # not root, no `ip`: one line, exit 2
        if reason:
            raise UsageError(reason)
    if args.capture or args.no_capture:
        pytest_args += ["--sockspec-capture", "all" if args.capture else "off"]
    for selector in selectors:
        pytest_args += ["--scenario", selector]
    if args.workers:
        pytest_args += ["-n", args.workers]
    if args.exitfirst:
        pytest_args.append("-x")
    pytest_args += args.pytest_args

    import pytest

    from sockspec.interrupts import SignalGuard, exit_status, signal_name
    from sockspec.plugin.session import RunRequest

    # SIGINT, SIGTERM, SIGHUP: the run stops, stops its servers, writes what finished
    # (marked interrupted) and exits as a shell reports that signal: 130, 143, 129.
    guard = SignalGuard()
    status = int(pytest.main(pytest_args, plugins=[guard, RunRequest(selection, specs)]))
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
    for path in args.paths:
        if not os.path.exists(path):
            raise UsageError(f"no such file or folder: {path}")
    try:
        specs = load_all(args.paths, builtin=not args.no_catalogue)  # + scenario files
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.kind:
        specs = [s for s in specs if s.kind == args.kind]
    if args.family:
        specs = [s for s in specs if s.family.name == args.family]
        if not specs:
            raise UsageError(f"no family named {args.family!r}")
    if not specs:
        raise UsageError("no scenario found")
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
    from sockspec.catalogue import catalogue_measures
    from sockspec.thresholds import describe_default

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
    from sockspec.catalogue import catalogue_measures, load_catalogue
    from sockspec.errors import TargetConfigError
    from sockspec.thresholds import resolve_names

    declared = load_target_file(args.file)
    print_warnings(declared.warnings)
    protocols = {t.protocol.name: t.protocol for t in [*declared.servers, *declared.clients]
                 if t.protocol is not None}
    for protocol in protocols.values():
        print(f"protocol {protocol.name}  framing: {protocol.framing.describe()}  "
              f"exchanges: {', '.join(e.name for e in protocol.exchanges)}  "
              f"({protocol.source}:{protocol.line})")
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
    from sockspec.reports.html import write_report_files

    if len(args.results) > 2:
        raise UsageError("report takes one results file, or two (old new) to compare")
    check_outputs([("-o", args.output)], inputs=[*args.results, args.bench])
    write_report_files(args.results, args.output, bench_path=args.bench)
    print(os.path.abspath(args.output))
    return 0


def command_clean(args: argparse.Namespace) -> int:
    from sockspec.cleanup import remove_leftovers

    removed = remove_leftovers()
    for line in removed:
        print(f"removed {line}")
    if not removed:
        print("nothing to remove")
    return 0


def command_bench(args: argparse.Namespace) -> int:
    from sockspec.measure.bench import main as bench_main

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
        parser = build_parser()
        if own[:1] == ["run"]:
            # PATHs, scenario ids and options in any order: `run tests --json r.json basic`.
            args = parser.run_parser.parse_intermixed_args(own[1:])
            args.command = "run"
        else:
            args = parser.parse_args(own)
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
