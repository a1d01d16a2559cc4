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
import sys
import time
from pathlib import Path

import pytest

from sockspec import isolate, process, suspend
from sockspec.catalogue import (
    Family,
    ScenarioSpec,
    catalogue_directory,
    check_unique_ids,
    load_catalogue,
    spec_of,
)
from sockspec.cause_facts import failure_facts
from sockspec.errors import HarnessError, SockspecError
from sockspec.interrupts import Pause, SignalGuard, note_progress, signal_name
from sockspec.measure.settings import raise_fd_limit
from sockspec.plugin import capture as packets_plugin
from sockspec.plugin.stash import (
    CAUSE_FACTS,
    CLIENT,
    EXTRA_PROPERTY,
    FRONTS,
    HARNESS_ERROR,
    HARNESS_ERROR_PROPERTY,
    NOTES,
    POOL,
    PROPERTY,
    SERVER,
    START_FAILURES,
    STOP_PROBLEMS,
    Case,
    case_of,
)
from sockspec.reports.results import (
    STATIC_FIELDS,
    ItemResult,
    ResultCollector,
    build_document,
    collect_run_metadata,
    write_results,
)
from sockspec.targets.selection import Selection, build_selection, check_scenario_names
from sockspec.thresholds import Figures
from sockspec.toxics.applies import skip_reason as toxic_skip_reason
from sockspec.under_test.ports import PortAllocator
from sockspec.under_test.server import ServerPool, StartPolicy
from sockspec.verdict import SHOULD, ScenarioFailed, is_warning

SELECTION = pytest.StashKey[Selection]()
FAMILIES = pytest.StashKey[dict]()      # config: family name -> Family, as registered
SPECS = pytest.StashKey[dict]()         # config: scenario id -> ScenarioSpec, as collected
GUARD = pytest.StashKey[SignalGuard]()
# In an xdist worker's workeroutput: the number of the signal that stopped it.
WORKER_SIGNAL = "sockspec_signal"
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
            thresholds=config.getoption("threshold"),
            protocol_files=config.getoption("protocols"),
            toxic_specs=config.getoption("toxic"),
            toxic_seed=config.getoption("toxic_seed"),
        )
    except SockspecError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SELECTION] = selection
    config.stash[GUARD] = signal_guard(config)
    raise_fd_limit()      # servers under test and load generators inherit the hard limit
    suspend.install()     # notice when the harness itself is stopped (sockspec.suspend)
    config.stash[START_FAILURES] = {}
    policy = StartPolicy(ready_timeout=config.getoption("ready_timeout"))
    config.stash[POOL] = ServerPool(PortAllocator(), policy)
    if config.getoption("isolate"):
        reason = isolate.unavailable_reason()
        if reason:
            raise pytest.UsageError(reason)
        config.stash[POOL].isolation = isolate.Isolation()
        config.pluginmanager.register(isolate.IsolationPlugin(config.stash[POOL].isolation),
                                      "sockspec-isolate")
    config.pluginmanager.register(packets_plugin.PacketCapturePlugin(config), "sockspec-packets")
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(ResultsReporter(config, selection), "sockspec-results")


def first_report(config: pytest.Config, report: pytest.TestReport) -> None:
    """The report that activated sockspec on an xdist controller, for its reporter."""
    reporter = config.pluginmanager.get_plugin("sockspec-results")
    if reporter is not None:
        reporter.pytest_runtest_logreport(report)


def signal_guard(config: pytest.Config) -> SignalGuard:
    """The SignalGuard of this run: the one `sockspec run` passed to pytest, else a new one.

    SIGINT, SIGTERM and SIGHUP then stop the running item and end the session in
    order: servers stopped, results of what finished written (sockspec.interrupts).
    """
    guard = next((p for p in config.pluginmanager.get_plugins() if isinstance(p, SignalGuard)),
                 None)
    if guard is None:
        guard = SignalGuard()
        config.pluginmanager.register(guard, "sockspec-signals")
    guard.install()
    if not hasattr(config, "workerinput"):
        # A signal to the controller alone (kill PID) must still stop the workers'
        # servers at once; a signal to the whole group reaches them twice, harmlessly.
        guard.on_first_signal(lambda signum: _signal_workers(config, signum))
    return guard


def _signal_workers(config: pytest.Config, signum: int) -> None:
    dsession = config.pluginmanager.getplugin("dsession")
    group = getattr(getattr(dsession, "nodemanager", None), "group", None)
    for gateway in list(group or ()):
        popen = getattr(getattr(gateway, "_io", None), "popen", None)
        if popen is not None and popen.poll() is None:  # not reaped: still our child
            os.kill(popen.pid, signum)


def pytest_unconfigure(config: pytest.Config) -> None:
    guard = config.stash.get(GUARD, None)
    if guard is not None:
        guard.uninstall()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    spec = spec_of(metafunc.function)
    if spec is None or spec.kind not in metafunc.fixturenames:
        return
    fixture = spec.kind
    selection = metafunc.config.stash[SELECTION]
    params = []
    cases = ((target, transport, toxics)
             for target in (selection.clients if spec.kind == "client" else selection.targets)
             if spec.applies_to(target.profile)
             for transport in target.transports() if transport in selection.transports
             for toxics in selection.toxics)
    for target, transport, toxics in cases:
        marks = [getattr(pytest.mark, spec.family.name), pytest.mark.timeout(spec.time_limit)]
        reason = spec.not_on.get(transport)
        if reason is None and transport not in spec.transports:
            reason = f"{spec.id} does not apply to {transport}"
        if reason is None:
            reason = spec.unmet(target)
        if reason is None and spec.needs_process_control and not target.managed:
            reason = (f"{spec.id} needs to start, stop or inspect the server's process; "
                      f"{target.name} is already running ({target.source})")
        if reason is None:
            reason = toxic_skip_reason(spec.family.name, metafunc.fixturenames, toxics)
        if reason:
            marks.append(pytest.mark.skip(reason=reason))
        case = Case(target, transport, toxics)
        params.append(pytest.param(case, marks=marks, id=case.id))
    metafunc.parametrize(fixture, params, indirect=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    note_progress("start", item.nodeid)
    pause = Pause.for_item(item.nodeid)  # SOCKSPEC_PAUSE_AT: off unless set
    started = time.monotonic()
    try:
        result = yield
    except Exception as exc:
        # A verdict reached while the harness itself was stopped (SIGSTOP, Ctrl-Z)
        # says nothing about the program under test: error, not failed.
        if spec_of(getattr(item, "function", None)) is not None:
            suspend.check_not_suspended(started)
        raise exc
    finally:
        if pause is not None:
            pause.at_end_of_call()
    note_progress("called", item.nodeid)
    # Thresholds missed by a measurement's figures: judged once the scenario's own
    # checks all passed (sockspec.thresholds.Figures).
    figures = getattr(item, "funcargs", {}).get("metrics")
    missed = figures.verdict() if isinstance(figures, Figures) else None
    if missed is not None:
        suspend.check_not_suspended(started)
        raise missed
    return result


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
    config.stash[SPECS] = {spec.id: spec for spec in specs.values()}
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
    level = check_level_of(item, call, report, spec)
    evidence = _evidence(item, call, report)
    warned = level is not None and is_warning(level, item.config.getoption("sockspec_strict"))
    if level is not None and level != "MUST":
        # Second line, after what went wrong: the check's level and what its miss means.
        head, _, rest = evidence.partition("\n")
        evidence = "\n".join(p for p in (head, level_line(level, spec, warned), rest) if p)
    if evidence and report.failed:
        report.longrepr = evidence
    record = static_record(item.config, case, spec)
    record["evidence"] = evidence
    record["metrics"] = (dict(item.funcargs.get("metrics") or {}) if report.when == "call"
                         else {})
    if report.when == "call":
        record["level"] = level or spec.level
        figures = item.funcargs.get("metrics")
        if isinstance(figures, Figures) and figures.applied:
            record["thresholds"] = list(figures.applied)
    if warned:
        # A SHOULD (or a default threshold) missed: a warning. pytest counts it as
        # passed, so the run exits 0; the record and the terminal say "warning".
        record["warning"] = True
        report.outcome = "passed"
        report.longrepr = None
        report.sockspec_warning = level
    if report.failed and call.excinfo is not None and isinstance(call.excinfo.value,
                                                                  HarnessError):
        record["harness_error"] = True  # the harness's own trouble: error, and no hint
        report.sockspec_harness_error = True  # and so in pytest's own lines (teststatus)
        item.stash[HARNESS_ERROR] = str(call.excinfo.value)
    if report.when == "teardown" and HARNESS_ERROR in item.stash:
        report.user_properties.append((HARNESS_ERROR_PROPERTY, item.stash[HARNESS_ERROR]))
    facts = _record_facts(item, call, report)
    if facts:
        record["facts"] = facts  # for the root-cause grouping (reports/causes.py)
    guard = item.config.stash.get(GUARD, None)
    if guard is not None and guard.signum is not None and report.when != "teardown":
        record["interrupted"] = signal_name(guard.signum)
    report.user_properties.append((PROPERTY, json.dumps(record)))


def check_level_of(item: pytest.Item, call: pytest.CallInfo, report: pytest.TestReport,
                   spec: ScenarioSpec) -> str | None:
    """The level of the check that failed this call phase (None: no check failed)."""
    if report.when != "call" or not report.failed or call.excinfo is None:
        return None
    exc = call.excinfo.value
    if not isinstance(exc, ScenarioFailed):
        return None
    return exc.level or spec.level


def level_line(level: str, spec: ScenarioSpec, warned: bool) -> str:
    """The evidence's first line for a check below MUST: its level and what its miss is."""
    if level == SHOULD:
        reason = f" ({spec.reason})" if spec.reason else ""
        return (f"level SHOULD{reason}: a warning; --strict makes it a failure" if warned
                else f"level SHOULD{reason}: a failure under --strict")
    return "level INFO: a default threshold missed is a warning"


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    """A warning shows as W / WARNING and is counted as "warned", not "passed"; the
    harness's own trouble in a call (HarnessError) as E / ERROR, counted as "error"
    (pytest says so of a broken setup or teardown), as the results JSON does."""
    if report.when == "call" and getattr(report, "sockspec_warning", None):
        return "warned", "W", ("WARNING", {"yellow": True})
    if report.when == "call" and report.failed \
            and getattr(report, "sockspec_harness_error", False):
        return "error", "E", ("ERROR", {"red": True})
    return None


def static_record(config: pytest.Config, case: Case, spec: ScenarioSpec) -> dict:
    """The fields of a results record that do not depend on how the item ran: those of
    the results JSON's one record type (ItemResult), plus what the family declares for
    the report ("family_charts", gathered into the document's "families")."""
    item = ItemResult(
        nodeid="", target=case.target.name, profile=case.target.profile,
        transport=case.transport, scenario=spec.id, family=spec.family.name,
        description=spec.description, hint=spec.family.hint,
        reproduce=reproduce_command(config, case, spec), kind=case.kind)
    record = {key: getattr(item, key) for key in (*STATIC_FIELDS, "kind")}
    if case.toxics is not None:  # which toxics stood between the harness and the program
        record["toxics"] = case.toxics.as_record(config.stash[SELECTION].toxic_seed)
    if spec.family.charts:
        record["family_charts"] = [dataclasses.asdict(c) for c in spec.family.charts]
    return record


def _record_facts(item: pytest.Item, call: pytest.CallInfo, report: pytest.TestReport) -> dict:
    """Structured facts of a broken phase (harness/cause_facts.py), and those the
    fixtures stashed (a dead server: harness/liveness.py)."""
    facts = {}
    if report.failed and call.excinfo is not None:
        sut = item.stash.get(SERVER, None) if report.when == "call" else None
        state = sut.facts().get("server_state") if sut is not None else None
        facts = failure_facts(call.excinfo.value, str(state) if state else None)
    return {**facts, **item.stash.get(CAUSE_FACTS, {})}


def _evidence(item: pytest.Item, call: pytest.CallInfo, report: pytest.TestReport) -> str:
    if report.skipped:
        longrepr = report.longrepr
        return longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    problems = item.stash.get(STOP_PROBLEMS, []) if report.when == "teardown" else []
    notes = item.stash.get(NOTES, []) if report.when == "teardown" else []
    if not report.failed:
        return "\n".join([*notes, *(f"after stop: {p}" for p in problems)])
    exc = call.excinfo.value if call.excinfo else None
    if isinstance(exc, HarnessError):
        return str(exc)  # about the harness, not the program under test: no facts of it
    if isinstance(exc, ScenarioFailed | SockspecError):
        text = str(exc)
    else:
        text = report.longreprtext
    sut = item.stash.get(SERVER, None) or item.stash.get(CLIENT, None)
    if sut is not None and report.when == "call":
        facts = "\n".join(f"  {k.replace('_', ' ')}: {v}" for k, v in sut.facts().items())
        text = f"{text}\n{facts}"
    fronts = item.stash.get(FRONTS, None)
    if fronts is not None and report.when == "call":
        text = "\n".join([text, *(f"  {line}" for line in fronts.describe())])
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
        args += ["--protocols", case.target.protocol.source] if case.target.protocol else []
    elif case.target.source == "--connect":
        args += ["--connect", str(case.target.connect), "--profile", case.target.profile]
        args += ["--protocols", case.target.protocol.source] if case.target.protocol else []
        args += ["--root", case.target.root] if case.target.root else []
        args += ["--allow-remote"] if not case.target.connect.is_loopback() else []
    elif case.target.source != "built-in":
        args += ["--targets", case.target.source]
    # The verdict depends on the levels asked for: --strict and the user's thresholds.
    if config.getoption("sockspec_strict"):
        args.append("--strict")
    args += [f"--threshold={text}" for text in config.getoption("threshold")]
    args += ["--target", case.target.name, "--transport", case.transport]
    if case.toxics is not None:
        args += ["--toxic", case.toxics.spec,
                 "--toxic-seed", str(config.stash[SELECTION].toxic_seed)]
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
    pool = session.config.stash[POOL]
    pool.stop_all()
    process.stop_all()
    if pool.isolation is not None:
        pool.isolation.close()  # after the servers inside have stopped
    guard = session.config.stash.get(GUARD, None)
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None and guard is not None and guard.signum is not None:
        workeroutput[WORKER_SIGNAL] = guard.signum  # read by the controller's testnodedown


class ResultsReporter:
    """Controller side: gathers every item's record and writes the outputs.

    Besides the phase reports it follows which items were selected and which
    started, so that an item that never reached the end of its call phase is
    not passed, and items that never ran are listed (results.build_document).
    """

    def __init__(self, config: pytest.Config, selection: Selection) -> None:
        self.config = config
        self.selection = selection
        self.collector = ResultCollector()
        self.run = collect_run_metadata(_invocation(config), sockspec_version())
        request = next((p for p in config.pluginmanager.get_plugins()
                        if isinstance(p, RunRequest)), None)
        self.specs = {spec.id: spec for spec in request.specs} if request else None
        self.selected: dict[str, None] = {}     # scenario nodeids chosen to run, in order
        self.stopped_workers: dict[str, int] = {}  # xdist worker id -> signal that stopped it
        self.final: dict | None = None          # the document, once the session finished

    def describe(self, nodeid: str) -> dict | None:
        """The static record of a scenario item known only by its node id (an xdist
        controller collects nothing): "path::test_<scenario>[<target>-<transport>]"."""
        head, bracket, param = nodeid.partition("[")
        spec = self.spec(head.rpartition("::")[2].removeprefix("test_"))
        targets = [*self.selection.targets, *self.selection.clients]
        case = next((c for target in targets for transport in self.selection.transports
                     for toxics in self.selection.toxics
                     if (c := Case(target, transport, toxics)).id == param.rstrip("]")), None)
        if not bracket or spec is None or case is None:
            return None
        return dict(static_record(self.config, case, spec), nodeid=nodeid)

    def spec(self, scenario_id: str) -> ScenarioSpec | None:
        """The spec of a scenario id: those collected here, those `sockspec run` found, or
        the built-in catalogue's (imported only when needed)."""
        collected = self.config.stash.get(SPECS, {})
        if scenario_id in collected:
            return collected[scenario_id]
        if self.specs is None:
            self.specs = {spec.id: spec for spec in load_catalogue()}
        return self.specs.get(scenario_id)

    def _select(self, nodeids) -> None:
        if self.config.option.collectonly:
            return  # nothing is meant to run: no item is "never ran"
        for nodeid in nodeids:
            if nodeid not in self.selected and self.describe(nodeid) is not None:
                self.selected[nodeid] = None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._select(item.nodeid for item in session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids: list[str]) -> None:
        self._select(ids)

    def pytest_runtest_logstart(self, nodeid: str, location) -> None:
        static = self.describe(nodeid)
        if static is not None:
            self.collector.start(nodeid, static)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        signum = (getattr(node, "workeroutput", None) or {}).get(WORKER_SIGNAL)
        if signum:
            self.stopped_workers[_worker_id(node)] = signum
            guard = self.config.stash.get(GUARD, None)
            if guard is not None and guard.worker_signum is None:
                guard.worker_signum = signum

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when not in ("setup", "call", "teardown"):
            self._worker_crashed(report)
            return
        records = [json.loads(v) for k, v in report.user_properties if k == PROPERTY]
        extras = [json.loads(v) for k, v in report.user_properties if k == EXTRA_PROPERTY]
        for record in records:
            self.collector.add_phase(
                report.nodeid, report.when, report.outcome, report.duration, record
            )
        if records:
            for extra in extras:
                self.collector.add_phase(report.nodeid, report.when, report.outcome, 0.0, extra)

    def _worker_crashed(self, report: pytest.TestReport) -> None:
        """xdist's report (when "???") for the item a worker was running when it went down."""
        static = self.describe(report.nodeid)
        if static is None:
            return
        worker = _worker_id(getattr(report, "node", None))
        signum = self.stopped_workers.get(worker)
        if signum:
            text = f"worker {worker} was stopped by {signal_name(signum)} while running this"
            self.collector.add_crash(report.nodeid, text, static, outcome="interrupted")
        else:
            text = str(report.longrepr or f"worker {worker} crashed while running this")
            self.collector.add_crash(
                report.nodeid, f"{text} (the worker process died: a crash, a kill -9 or "
                "the kernel's OOM killer); its server may have been left running", static)

    def _drain_worker_events(self) -> None:
        """Reports that reached the controller after a signal ended its event loop.

        xdist queues each worker's events for its loop; once a signal ends that loop,
        the reports of items that finished meanwhile (and each worker's word that a
        signal stopped it) wait in the queue, unread. Read them, so that an item that
        ended is not recorded as interrupted.
        """
        dsession = self.config.pluginmanager.getplugin("dsession")
        queue = getattr(dsession, "queue", None)
        while queue is not None:
            try:
                name, kwargs = queue.get_nowait()
            except Exception:  # noqa: BLE001 - queue.Empty, or a queue xdist changed
                return
            if name == "logstart":
                self.pytest_runtest_logstart(kwargs["nodeid"], kwargs.get("location"))
            elif name == "testreport":
                self.pytest_runtest_logreport(kwargs["rep"])
            elif name == "workerfinished":
                self.pytest_testnodedown(kwargs["node"], None)

    def document(self, exitstatus: int = 0) -> dict:
        guard = self.config.stash.get(GUARD, None)
        signum = guard.stopped_by if guard is not None else None
        signal = signal_name(signum) if signum is not None else None
        started = self.collector.started()
        not_run = [self.describe(nodeid) for nodeid in self.selected if nodeid not in started]
        unfinished = bool(self.collector.unfinished()) or exitstatus in (
            pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.INTERRUPTED)
        run = dict(self.run, workers=_worker_count(self.config))
        if self.selection.toxics != (None,):  # added to schema 1: the run's toxic profiles
            run["toxics"] = {"profiles": [p.spec if p else "none" for p in self.selection.toxics],
                             "seed": self.selection.toxic_seed}
        targets = [
            {"name": t.name, "profile": t.profile, "source": t.source,
             "transports": [tr for tr in t.transports() if tr in self.selection.transports],
             "kind": kind,
             # --isolate: this server ran in a network namespace of its own (sockspec.isolate)
             "isolated": bool(kind == "server" and t.managed
                              and self.config.getoption("isolate")),
             # a declared protocol's name and file ([[protocol]]); null for echo/http
             "protocol": ({"name": t.protocol.name, "source": t.protocol.source,
                           "version": t.protocol.version} if t.protocol else None)}
            for kind, group in (("server", self.selection.targets),
                                ("client", self.selection.clients))
            for t in group
        ]
        return build_document(run, self.collector.items(interrupted_by=signal), targets,
                              [r for r in not_run if r is not None], signal=signal,
                              unfinished=unfinished, families=self.collector.families)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self._drain_worker_events()
        document = self.final = self.document(session.exitstatus)
        status = document["run"]["status"]
        if status == "interrupted" and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.INTERRUPTED  # a signal came as it ended
        if status == "incomplete" and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        json_path = self.config.getoption("sockspec_json")
        html_path = self.config.getoption("sockspec_html")
        # pytest's junitxml (a normal hook: it has written its file by now)
        junit_path = getattr(self.config.option, "xmlpath", None)
        if not (json_path or html_path or junit_path):
            return
        from sockspec.reports.html import write_html_report
        from sockspec.reports.junit import harness_errors_as_errors
        from sockspec.reports.outputs import write_each

        # One output that cannot be written (disk full) does not cost the others:
        # one line each on stderr, no temporary file left, and the run exits 1.
        problems = write_each(
            ([lambda: write_results(json_path, document)] if json_path else [])
            + ([lambda: write_html_report(document, html_path)] if html_path else [])
            + ([lambda: harness_errors_as_errors(junit_path, HARNESS_ERROR_PROPERTY)] if junit_path else []))
        for problem in problems:
            print(f"sockspec: {problem}", file=sys.stderr)
        if problems and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        document = self.final
        if document is None or not (document["results"] or document["not_run"]):
            return
        terminalreporter.section("sockspec")
        for line in summary_lines(document):
            terminalreporter.write_line(line)
        for option in ("sockspec_json", "sockspec_html"):
            path = self.config.getoption(option)
            if path:
                terminalreporter.write_line(f"{option.split('_')[1]}: {os.path.abspath(path)}")


def summary_lines(document: dict) -> list[str]:
    """One line per (target, transport): counts, then each failing family with its hint;
    first, when the run did not complete, how it ended and what never ran."""
    rows: dict[tuple[str, str], dict[str, int]] = {}
    failing: dict[str, str] = {}
    for item in document["results"]:
        counts = rows.setdefault((item["target"], item["transport"]), {})
        counts[item["outcome"]] = counts.get(item["outcome"], 0) + 1
        if item["outcome"] == "failed" and item["hint"]:
            failing[item["family"]] = item["hint"]
    lines = []
    run = document["run"]
    if run.get("toxics"):
        lines.append(f"toxics: {', '.join(run['toxics']['profiles'])} (seed "
                     f"{run['toxics']['seed']}; --toxic-seed replays the same draws)")
    if run["status"] == "interrupted":
        lines.append(f"INTERRUPTED by {run['signal'] or 'a signal'}: "
                     f"{len(document['not_run'])} selected items never ran")
    elif run["status"] == "incomplete":
        lines.append(f"INCOMPLETE: {len(document['not_run'])} selected items never ran")
    for (target, transport), counts in sorted(rows.items()):
        text = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
        lines.append(f"{target} over {transport}: {text}")
    lines += cause_lines(document)
    for family, hint in sorted(failing.items()):
        lines.append(f"fix hint [{family}]: {hint}")
    lines += warning_lines(document)
    return lines


def cause_lines(document: dict) -> list[str]:
    """The root causes (reports/causes.py), the one to fix first first: what broke, the
    family to fix first and the families that failed as its consequences."""
    causes = [c for c in document.get("causes") or [] if isinstance(c, dict)]
    if not causes:
        return []
    lines = ["root causes, the one to fix first first:"]
    for number, cause in enumerate(causes, start=1):
        where = f"{cause['target']} ({', '.join(cause['transports'])})"
        count = len(cause["items"])
        items = f"{count} item{'s' if count != 1 else ''}"
        if cause["cause"] == "own":
            lines.append(f"  {number}. {where}: {cause['fix_first']} failed on its own ({items})")
            continue
        detail = cause["title"] + (f": {cause['detail']}" if cause.get("detail") else "")
        consequences = ", ".join(cause["consequences"]) or "none"
        lines.append(f"  {number}. {where}: {detail}")
        lines.append(f"     fix {cause['fix_first']} first; its consequences: {consequences} "
                     f"({items})")
    return lines


def warning_lines(document: dict) -> list[str]:
    """Warnings apart from failures: one line each (level, family, scenario, where, what),
    and "PASSED with N warnings" when nothing worse happened."""
    warned = [r for r in document["results"] if r["outcome"] == "warning"]
    if not warned:
        return []
    lines = []
    for r in sorted(warned, key=lambda r: (r["family"], r["scenario"], r["target"],
                                           r["transport"])):
        headline = next((line.strip() for line in r["evidence"].splitlines() if line.strip()),
                        "")
        lines.append(f"warning [{r['family']}] {r.get('level') or 'SHOULD'} {r['scenario']} "
                     f"({r['target']} over {r['transport']}): {headline}")
    summary = document["summary"]
    if (document["run"]["status"] == "complete" and not summary.get("failed")
            and not summary.get("error")):
        n = len(warned)
        lines.append(f"PASSED with {n} warning{'s' if n != 1 else ''} (--strict makes a "
                     "SHOULD a failure; --threshold makes a measurement's limit yours)")
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


def _worker_id(node: object) -> str:
    return str(getattr(getattr(node, "gateway", None), "id", None) or "?")


def _worker_count(config: pytest.Config) -> int:
    numprocesses = getattr(config.option, "numprocesses", None)
    return int(numprocesses or 0)
