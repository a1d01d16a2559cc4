"""The session plugin: every (scenario x target x transport) becomes one pytest item.

Registered by sockspec.plugin (the ``pytest11`` entry point) when a session uses
sockspec; see there for when. Server scenarios take the ``server`` fixture and
run once per server under test; client scenarios (``@client_scenario``) take
the ``client`` fixture and run once per client under test. Both flow through
the same reporting path: a record's ``target`` is the server's or the client's
name and ``kind`` says which. Items carry their family as a marker (registered
as the module defining it is collected, so ``--strict-markers`` passes), so
``-k``, ``-m <family>``, ``--lf``, ``-x``, ``-n auto`` and ``--junitxml`` behave
as pytest users expect.

Results travel from xdist workers to the controller inside each report's
``user_properties`` (a JSON string under the key "sockspec"); only the
controller writes the results JSON and the HTML report.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import signal
import sys
from pathlib import Path

import pytest

from sockspec import process
from sockspec.catalogue import (
    Family,
    ScenarioSpec,
    catalogue_directory,
    check_unique_ids,
    spec_of,
)
from sockspec.errors import SockspecError
from sockspec.plugin import capture as packets_plugin
from sockspec.plugin.stash import (
    CLIENT,
    EXTRA_PROPERTY,
    POOL,
    PROPERTY,
    SERVER,
    START_FAILURES,
    STOP_PROBLEMS,
    Case,
    case_of,
)
from sockspec.reports.results import (
    ItemResult,
    ResultCollector,
    build_document,
    collect_run_metadata,
    write_results,
)
from sockspec.targets.selection import Selection, build_selection, check_scenario_names
from sockspec.under_test.ports import PortAllocator
from sockspec.under_test.server import ServerPool, StartPolicy
from sockspec.verdict import ScenarioFailed

SELECTION = pytest.StashKey[Selection]()
FAMILIES = pytest.StashKey[dict]()      # config: family name -> Family, as registered
SPECS = pytest.StashKey[dict]()         # config: scenario id -> ScenarioSpec, as collected
__all__ = ["Case", "PROPERTY", "EXTRA_PROPERTY", "case_of"]


class RunRequest:
    """Handed to pytest.main by ``sockspec run``: its selection, made once for the run."""

    def __init__(self, selection: Selection, specs: list[ScenarioSpec]) -> None:
        self.selection = selection
        self.specs = specs

    def pytest_configure(self, config: pytest.Config) -> None:
        from sockspec.plugin import activate

        activate(config)


def register_family(config: pytest.Config, family: Family) -> None:
    """A family becomes a marker when the first of its scenarios is seen."""
    known = config.stash.setdefault(FAMILIES, {})
    if family.name in known:
        return
    known[family.name] = family
    config.addinivalue_line("markers", f"{family.name}: {family.behaviour}")


def pytest_configure(config: pytest.Config) -> None:
    request = next((p for p in config.pluginmanager.get_plugins()
                    if isinstance(p, RunRequest)), None)
    config.stash[SPECS] = {}
    for spec in request.specs if request else []:
        register_family(config, spec.family)
    if config.getoption("sockspec_catalogue") and str(catalogue_directory()) not in config.args:
        config.args.append(str(catalogue_directory()))
    try:
        selection = request.selection if request else build_selection(
            targets_file=config.getoption("targets"),
            target_names=config.getoption("target"),
            transports=config.getoption("transport"),
            server_cmd=config.getoption("server_cmd"),
            profile=config.getoption("profile"),
            cwd=str(config.invocation_params.dir),
            connect=config.getoption("connect"),
            root=config.getoption("root"),
            allow_remote=config.getoption("allow_remote"),
            client_cmd=config.getoption("client_cmd"),
            scenarios=config.getoption("scenario"),
        )
    except SockspecError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SELECTION] = selection
    install_stop_on_sigterm()
    config.stash[START_FAILURES] = {}
    policy = StartPolicy(ready_timeout=config.getoption("ready_timeout"))
    config.stash[POOL] = ServerPool(PortAllocator(), policy)
    config.pluginmanager.register(packets_plugin.PacketCapturePlugin(config), "sockspec-packets")
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(ResultsReporter(config, selection), "sockspec-results")


def first_report(config: pytest.Config, report: pytest.TestReport) -> None:
    """The report that activated sockspec on an xdist controller, for its reporter."""
    reporter = config.pluginmanager.get_plugin("sockspec-results")
    if reporter is not None:
        reporter.pytest_runtest_logreport(report)


def install_stop_on_sigterm() -> None:
    """A SIGTERM to the harness stops its servers first, then ends it as SIGTERM would."""
    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        return

    def stop_servers_then_die(signum: int, _frame: object) -> None:
        process.stop_all()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, stop_servers_then_die)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    spec = spec_of(metafunc.function)
    if spec is None or spec.kind not in metafunc.fixturenames:
        return
    fixture = spec.kind
    selection = metafunc.config.stash[SELECTION]
    params = []
    for target in selection.clients if spec.kind == "client" else selection.targets:
        if not spec.applies_to(target.profile):
            continue
        for transport in target.transports():
            if transport not in selection.transports:
                continue
            marks = [getattr(pytest.mark, spec.family.name), pytest.mark.timeout(spec.time_limit)]
            reason = spec.not_on.get(transport)
            if reason is None and transport not in spec.transports:
                reason = f"{spec.id} does not apply to {transport}"
            if reason is None and spec.needs_process_control and not target.managed:
                reason = (f"{spec.id} needs to start, stop or inspect the server's process; "
                          f"{target.name} is already running ({target.source})")
            if reason:
                marks.append(pytest.mark.skip(reason=reason))
            case = Case(target, transport)
            params.append(pytest.param(case, marks=marks, id=case.id))
    metafunc.parametrize(fixture, params, indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The one selection pass over the collected scenarios: --scenario names are checked
    against every scenario collected (built-in or the user's own), then applied."""
    specs = {}
    for item in items:
        spec = spec_of(getattr(item, "function", None))
        if spec is not None:
            specs.setdefault((spec.module, spec.id), spec)
    try:
        check_unique_ids(list(specs.values()))
        check_scenario_names(config.getoption("scenario"), list(specs.values()))
    except (SockspecError, ValueError) as exc:
        raise pytest.UsageError(str(exc)) from None
    wanted = config.stash[SELECTION].scenarios
    keep, drop = [], []
    for item in items:
        spec = spec_of(getattr(item, "function", None))
        if spec is None:
            keep.append(item)
            continue
        has_case = case_of(item) is not None
        chosen = not wanted or spec.id in wanted or spec.family.name in wanted
        (keep if has_case and chosen else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    spec = spec_of(getattr(item, "function", None))
    case = case_of(item)
    if spec is None or case is None:
        return
    evidence = _evidence(item, call, report)
    if evidence and report.failed:
        report.longrepr = evidence
    record = ItemResult(
        nodeid=item.nodeid,
        target=case.target.name,
        profile=case.target.profile,
        transport=case.transport,
        scenario=spec.id,
        family=spec.family.name,
        description=spec.description,
        hint=spec.family.hint,
        reproduce=reproduce_command(item.config, case, spec),
        evidence=evidence,
        metrics=dict(item.funcargs.get("metrics") or {}) if report.when == "call" else {},
        kind=case.kind,
    )
    fields = record.phase_record()
    if spec.family.charts:  # the family's knowledge, for the report (results "families")
        fields["family_charts"] = [dataclasses.asdict(c) for c in spec.family.charts]
    report.user_properties.append((PROPERTY, json.dumps(fields)))


def _evidence(item: pytest.Item, call: pytest.CallInfo, report: pytest.TestReport) -> str:
    if report.skipped:
        longrepr = report.longrepr
        return longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    problems = item.stash.get(STOP_PROBLEMS, []) if report.when == "teardown" else []
    if not report.failed:
        return "\n".join(f"after stop: {p}" for p in problems)
    exc = call.excinfo.value if call.excinfo else None
    if isinstance(exc, ScenarioFailed | SockspecError):
        text = str(exc)
    else:
        text = report.longreprtext
    sut = item.stash.get(SERVER, None) or item.stash.get(CLIENT, None)
    if sut is not None and report.when == "call":
        facts = "\n".join(f"  {k.replace('_', ' ')}: {v}" for k, v in sut.facts().items())
        text = f"{text}\n{facts}"
    return text


def reproduce_command(config: pytest.Config, case: Case, spec: ScenarioSpec) -> str:
    """The exact command that runs this one scenario against this target again.

    A scenario from outside the built-in catalogue is found by its file: the path
    comes before the scenario id (relative to where the run was started, when it
    lies below it).
    """
    args = ["sockspec", "run"]
    if case.target.source in ("--server-cmd", "--client-cmd"):
        args += [case.target.source, shlex.join(case.target.tcp or case.target.unix or ()),
                 "--profile", case.target.profile]
    elif case.target.source == "--connect":
        args += ["--connect", str(case.target.connect), "--profile", case.target.profile]
        args += ["--root", case.target.root] if case.target.root else []
        args += ["--allow-remote"] if not case.target.connect.is_loopback() else []
    elif case.target.source != "built-in":
        args += ["--targets", case.target.source]
    args += ["--target", case.target.name, "--transport", case.transport]
    if not spec.builtin and spec.path:
        path = Path(spec.path)
        try:
            path = path.relative_to(config.invocation_params.dir)
        except ValueError:
            pass
        args.append(str(path))
    args.append(spec.id)
    return shlex.join(args)


def pytest_sessionfinish(session: pytest.Session) -> None:
    session.config.stash[POOL].stop_all()
    process.stop_all()


class ResultsReporter:
    """Controller side: gathers every item's record and writes the outputs."""

    def __init__(self, config: pytest.Config, selection: Selection) -> None:
        self.config = config
        self.selection = selection
        self.collector = ResultCollector()
        self.run = collect_run_metadata(_invocation(config), sockspec_version())

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        records = [json.loads(v) for k, v in report.user_properties if k == PROPERTY]
        extras = [json.loads(v) for k, v in report.user_properties if k == EXTRA_PROPERTY]
        for record in records:
            self.collector.add_phase(
                report.nodeid, report.when, report.outcome, report.duration, record
            )
        if records:
            for extra in extras:
                self.collector.add_phase(report.nodeid, report.when, report.outcome, 0.0, extra)

    def document(self) -> dict:
        run = dict(self.run, workers=_worker_count(self.config))
        targets = [
            {"name": t.name, "profile": t.profile, "source": t.source,
             "transports": [tr for tr in t.transports() if tr in self.selection.transports],
             "kind": kind}
            for kind, group in (("server", self.selection.targets),
                                ("client", self.selection.clients))
            for t in group
        ]
        return build_document(run, self.collector.items(), targets, self.collector.families)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        json_path = self.config.getoption("sockspec_json")
        html_path = self.config.getoption("sockspec_html")
        if not (json_path or html_path):
            return
        document = self.document()
        if json_path:
            write_results(json_path, document)
        if html_path:
            from sockspec.reports.html import write_html_report

            write_html_report(document, html_path)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        items = self.collector.items()
        if not items:
            return
        terminalreporter.section("sockspec")
        for line in summary_lines(items):
            terminalreporter.write_line(line)
        for option in ("sockspec_json", "sockspec_html"):
            path = self.config.getoption(option)
            if path:
                terminalreporter.write_line(f"{option.split('_')[1]}: {os.path.abspath(path)}")


def summary_lines(items) -> list[str]:
    """One line per (target, transport): counts, then each failing family with its hint."""
    rows: dict[tuple[str, str], dict[str, int]] = {}
    failing: dict[str, str] = {}
    for item in items:
        counts = rows.setdefault((item.target, item.transport), {})
        counts[item.outcome] = counts.get(item.outcome, 0) + 1
        if item.outcome == "failed":
            failing[item.family] = item.hint
    lines = []
    for (target, transport), counts in sorted(rows.items()):
        text = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
        lines.append(f"{target} over {transport}: {text}")
    for family, hint in sorted(failing.items()):
        lines.append(f"fix hint [{family}]: {hint}")
    return lines


def sockspec_version() -> str:
    """The one source of the version: the installed package's metadata."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sockspec")
    except PackageNotFoundError:  # a checkout run without installing
        return "0+unknown"


def _invocation(config: pytest.Config) -> list[str]:
    # sys.argv is the user's command line: `sockspec run ...` or `pytest ...`.
    return [Path(sys.argv[0]).name, *sys.argv[1:]]


def _worker_count(config: pytest.Config) -> int:
    numprocesses = getattr(config.option, "numprocesses", None)
    return int(numprocesses or 0)
