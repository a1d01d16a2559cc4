"""An outcome is ``passed`` only when the call phase ran to its end and passed.

ResultCollector units (setup-only, interrupted, crashed worker, the harness's own
trouble), the run status and never-run list of the document, the HTML banner,
and one end-to-end check that a HarnessError raised by a scenario is ``error``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest
from report_samples import RUN
from sockspec_runner import PROJECT

from sockspec.plugin.session import summary_lines
from sockspec.reports.html import render_html
from sockspec.reports.results import OUTCOMES, ResultCollector, build_document

STATIC = {"target": "t", "profile": "echo", "transport": "tcp", "scenario": "s",
          "family": "basic", "description": "d", "hint": "check the accept loop",
          "reproduce": "sockspec run s", "kind": "server"}


def phase(collector: ResultCollector, nodeid: str, when: str, outcome: str,
          evidence: str = "", **extra: object) -> None:
    collector.add_phase(nodeid, when, outcome, 0.25, dict(STATIC, evidence=evidence, **extra))


def outcome_of(collector: ResultCollector, nodeid: str, interrupted_by: str | None = None):
    (item,) = [i for i in collector.items(interrupted_by) if i.nodeid == nodeid]
    return item


def test_a_setup_report_alone_is_never_passed():
    c = ResultCollector()
    phase(c, "a", "setup", "passed")
    item = outcome_of(c, "a")
    assert item.outcome == "error"
    assert item.evidence.startswith("did not finish")
    assert c.unfinished() == ["a"]


def test_an_item_that_started_without_any_report_is_not_passed():
    c = ResultCollector()
    c.start("a", STATIC)
    assert outcome_of(c, "a").outcome == "error"
    assert outcome_of(c, "a", interrupted_by="SIGTERM").outcome == "interrupted"


def test_an_item_running_when_the_signal_came_is_interrupted_without_a_hint():
    c = ResultCollector()
    phase(c, "a", "setup", "passed")
    item = outcome_of(c, "a", interrupted_by="SIGINT")
    assert item.outcome == "interrupted"
    assert item.evidence == "interrupted by SIGINT before the scenario finished"
    assert item.hint == ""  # the server is not to blame


def test_a_call_report_made_after_a_signal_is_interrupted_even_when_it_failed():
    # The signal also hit a helper process, so the scenario failed on its way out.
    c = ResultCollector()
    phase(c, "a", "setup", "passed")
    phase(c, "a", "call", "failed", "load generator died", interrupted="SIGTERM")
    item = outcome_of(c, "a")
    assert item.outcome == "interrupted"
    assert item.evidence.splitlines() == ["interrupted by SIGTERM while the scenario ran",
                                          "load generator died"]


def test_items_that_finished_keep_their_outcome_in_an_interrupted_run():
    c = ResultCollector()
    for when in ("setup", "call", "teardown"):
        phase(c, "done", when, "passed")
    phase(c, "failed", "setup", "passed")
    phase(c, "failed", "call", "failed", "echo lost bytes")
    phase(c, "skip", "setup", "skipped", "not on unix")
    phase(c, "broken", "setup", "failed", "never became ready")
    got = {i.nodeid: i.outcome for i in c.items(interrupted_by="SIGHUP")}
    assert got == {"done": "passed", "failed": "failed", "skip": "skipped", "broken": "error"}
    assert c.unfinished() == []


def test_a_crashed_worker_makes_its_item_an_error_with_the_crash():
    c = ResultCollector()
    phase(c, "a", "setup", "passed")
    c.add_crash("a", "worker 'gw0' crashed while running 'a'")
    item = outcome_of(c, "a")
    assert item.outcome == "error"
    assert item.evidence == "worker 'gw0' crashed while running 'a'"
    # Even after a passed call: the worker died in its teardown, stopping the server.
    phase(c, "b", "setup", "passed")
    phase(c, "b", "call", "passed")
    c.add_crash("b", "worker 'gw1' crashed while running 'b'", STATIC)
    assert outcome_of(c, "b").outcome == "error"


def test_a_worker_stopped_by_a_signal_makes_its_item_interrupted():
    c = ResultCollector()
    c.add_crash("a", "worker gw0 was stopped by SIGTERM while running this", STATIC,
                outcome="interrupted")
    item = outcome_of(c, "a")
    assert (item.outcome, item.target, item.scenario) == ("interrupted", "t", "s")


def test_the_harness_own_trouble_in_the_call_phase_is_an_error_without_a_hint():
    c = ResultCollector()
    phase(c, "a", "setup", "passed")
    phase(c, "a", "call", "failed", "could not write the document root: disk full",
          harness_error=True)
    item = outcome_of(c, "a")
    assert item.outcome == "error"
    assert item.evidence == "could not write the document root: disk full"
    assert item.hint == ""


def test_extra_facts_never_turn_a_failed_call_into_a_pass():
    c = ResultCollector()
    phase(c, "a", "setup", "passed")
    phase(c, "a", "call", "failed", "RST seen")
    c.add_phase("a", "call", "passed", 0.0, {"evidence": "packets: RST at +1 ms"})
    assert outcome_of(c, "a").outcome == "failed"


def test_the_document_says_how_the_run_ended_and_what_never_ran():
    c = ResultCollector()
    phase(c, "a", "setup", "passed")
    phase(c, "a", "call", "passed")
    phase(c, "b", "setup", "passed")
    never = [dict(STATIC, nodeid="c")]
    interrupted = build_document(dict(RUN), c.items("SIGTERM"), [], never, signal="SIGTERM")
    assert interrupted["run"]["status"] == "interrupted"
    assert interrupted["run"]["signal"] == "SIGTERM"
    assert interrupted["not_run"] == never
    assert interrupted["summary"] == {"passed": 1, "failed": 0, "error": 0, "skipped": 0,
                                      "interrupted": 1, "warning": 0, "total": 2}
    assert set(OUTCOMES) | {"total"} == set(interrupted["summary"])

    incomplete = build_document(dict(RUN), c.items(), [], never, unfinished=bool(c.unfinished()))
    assert (incomplete["run"]["status"], incomplete["run"]["signal"]) == ("incomplete", None)
    assert [r["outcome"] for r in incomplete["results"]] == ["passed", "error"]

    done = ResultCollector()
    phase(done, "a", "setup", "passed")
    phase(done, "a", "call", "passed")
    complete = build_document(dict(RUN), done.items(), [])
    assert (complete["run"]["status"], complete["not_run"]) == ("complete", [])


def banner(html: str) -> str:
    start = html.index('<section class="verdict')
    return html[start:html.index("</section>", start)]


def test_the_banner_of_an_interrupted_or_incomplete_run_never_says_passed():
    c = ResultCollector()
    phase(c, "a", "setup", "passed")
    phase(c, "a", "call", "passed")
    never = [dict(STATIC, nodeid="scenarios/basic.py::test_s[t-tcp]", scenario="never_ran")]
    # Everything that ran passed, but a signal stopped the run before the rest.
    stopped = render_html(build_document(dict(RUN), c.items(), [], never, signal="SIGTERM"))
    assert "INTERRUPTED" in banner(stopped) and "PASSED" not in banner(stopped)
    assert "Stopped by SIGTERM; 1 selected item never ran." in banner(stopped)
    assert 'id="not-run"' in stopped and "never_ran" in stopped

    incomplete = render_html(build_document(dict(RUN), c.items(), [], never))
    assert "INCOMPLETE" in banner(incomplete) and "PASSED" not in banner(incomplete)

    phase(c, "b", "setup", "passed")
    unfinished = render_html(build_document(dict(RUN), c.items("SIGINT"), []))
    assert "INTERRUPTED" in banner(unfinished)
    assert '<span class="badge b-interrupted">interrupted</span>' in unfinished

    complete = render_html(build_document(dict(RUN), c.items()[:1], []))
    assert "PASSED" in banner(complete)


def test_the_terminal_summary_says_how_the_run_ended():
    c = ResultCollector()
    phase(c, "a", "setup", "passed")
    never = [dict(STATIC, nodeid="c")]
    lines = summary_lines(build_document(dict(RUN), c.items("SIGINT"), [], never,
                                         signal="SIGINT"))
    assert lines[:2] == ["INTERRUPTED by SIGINT: 1 selected items never ran",
                         "t over tcp: 1 interrupted"]


HARNESS_TROUBLE = textwrap.dedent('''
    from sockspec.errors import HarnessError
    from sockspec.catalogue import Family, scenario

    OWN = Family(name="harness-trouble", behaviour="the harness fails itself",
                 hint="a hint that would wrongly blame the server")


    @scenario(OWN, profiles=("echo",), transports=("tcp",))
    def test_harness_cannot_do_its_part(server):
        """The harness cannot write what the scenario needs."""
        raise HarnessError("could not write the document root: No space left on device")
''')


@pytest.mark.parametrize("workers", ([], ["-n", "2"]), ids=("serial", "xdist"))
def test_a_harness_error_raised_by_a_scenario_is_an_error_not_a_failure(tmp_path, workers):
    (tmp_path / "test_trouble.py").write_text(HARNESS_TROUBLE)
    results = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "sockspec.plugin.session", "-p", "no:cacheprovider",
         "-p", "no:randomly", "-q", "--rootdir", str(tmp_path), "-c", "/dev/null",
         "--target", "reference-echo", "--transport", "tcp",
         "--sockspec-json", str(results), *workers, str(tmp_path / "test_trouble.py")],
        cwd=PROJECT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert results.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    (record,) = json.loads(results.read_text())["results"]
    assert record["outcome"] == "error", record
    assert record["evidence"] == "could not write the document root: No space left on device"
    assert record["hint"] == ""
    # pytest's own summary line says so too, and the run still exits 1.
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[-1].startswith("1 error in "), proc.stdout[-500:]


@pytest.mark.parametrize("workers", ([], ["-n", "2"]), ids=("serial", "xdist"))
def test_a_harness_error_is_an_error_in_junit_xml_too(tmp_path, workers):
    """pytest's junitxml writes every failed call as <failure>; the harness's own
    trouble is an <error> there as in the results JSON, and the counts follow."""
    (tmp_path / "test_trouble.py").write_text(HARNESS_TROUBLE + textwrap.dedent('''

        @scenario(OWN, profiles=("echo",), transports=("tcp",))
        def test_the_server_is_at_fault(server):
            """A verdict against the server."""
            from sockspec.verdict import fail
            fail("the server did something wrong")
    '''))
    junit, link = tmp_path / "out" / "junit.xml", tmp_path / "junit-link.xml"
    junit.parent.mkdir()
    link.symlink_to(junit)   # followed: the link stays a link
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "sockspec.plugin.session", "-p", "no:cacheprovider",
         "-p", "no:randomly", "-q", "--rootdir", str(tmp_path), "-c", "/dev/null",
         "--target", "reference-echo", "--transport", "tcp", "--junitxml", str(link),
         *workers, str(tmp_path / "test_trouble.py")],
        cwd=PROJECT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert link.is_symlink()
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("errors"), suite.get("failures"), suite.get("tests")) == ("1", "1", "2")
    cases = {case.get("name").split("[")[0]: [child.tag for child in case
                                              if child.tag in ("failure", "error")]
             for case in suite.iter("testcase")}
    assert cases == {"test_harness_cannot_do_its_part": ["error"],
                     "test_the_server_is_at_fault": ["failure"]}
    error = suite.find("testcase/error")
    assert "No space left on device" in error.get("message")
