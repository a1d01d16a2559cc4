"""Root causes (reports/causes.py) and the short path on dead servers (harness/liveness.py).

Unit tests on crafted records and on small in-process servers, then self-tests
that run `sockspec run` against fixture servers and read the results JSON.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from sockspec_runner import PROJECT, run_sockspec, server_cmd

from sockspec.liveness import NEVER_ACCEPTS, NO_ANSWER, Liveness, probe
from sockspec.plugin.session import summary_lines
from sockspec.reports.causes import causes_document, find_causes, symptom_of
from sockspec.reports.html import render_html
from sockspec.reports.results import ItemResult, build_document
from sockspec.transport import TcpAddress

HOSTILE = PROJECT / "fixtures" / "hostile"


def record(family: str, scenario: str, evidence: str, outcome: str = "failed",
           transport: str = "tcp", target: str = "srv", **facts) -> dict:
    return {"nodeid": f"scenarios/x.py::test_{scenario}[{target}-{transport}]",
            "target": target, "transport": transport, "family": family,
            "scenario": scenario, "outcome": outcome, "evidence": evidence,
            "hint": "a hint", "facts": facts}


# ------------------------------------------------------------------ grouping


def test_every_request_answered_400_is_one_cause_with_basic_first():
    results = [
        record("basic", "http_basic", "GET /basic.txt answered 400, not 200", status=400),
        record("partial-reads", "http_head_in_pieces", "no 200",
               status_line="HTTP/1.1 400 Bad Request"),
        record("fd-leak", "fd_leak_http", "the server did not serve a first request\n"
               "  probe: GET /sockspec-probe.txt: HTTP 400 Bad Request, 12 body bytes"),
        record("odd-sizes", "http_odd_sizes", "5 of 5 files did not arrive exact\n"
               "  file of 0 bytes: status 400 Bad Request"),
        record("odd-sizes", "http_odd_sizes", "x", transport="unix", status=400),
    ]
    causes, cause_of = causes_document(results)
    assert len(causes) == 1
    (cause,) = causes
    assert cause["cause"] == "same-status" and cause["detail"] == "HTTP 400"
    assert cause["fix_first"] == "basic"
    assert cause["consequences"] == ["partial-reads", "odd-sizes", "fd-leak"]
    assert cause["transports"] == ["tcp", "unix"]
    assert sorted(cause["items"]) == sorted(r["nodeid"] for r in results)
    assert set(cause_of.values()) == {cause["id"]}


def test_dead_server_is_one_cause_fixed_in_basic_even_when_seen_first_elsewhere():
    results = [
        record("backlog", "backlog_burst", "the server did not serve a first request\n"
               "  probe: receive failed after 0 of 31 bytes: timed out",
               no_answer=True, first_seen="backlog_burst"),
        record("basic", "echo_basic", "short path: ...", no_answer=True, short_path=True,
               first_seen="backlog_burst"),
        record("throughput", "echo_throughput", "short path: ...", no_answer=True,
               short_path=True, first_seen="backlog_burst"),
    ]
    (cause,) = find_causes(results)
    assert (cause.cause, cause.fix_first) == ("no-answer", "basic")
    assert cause.consequences == ["backlog", "throughput"]


def test_dead_server_without_basic_names_the_family_where_it_was_seen_first():
    results = [
        record("sustained-load", "sustained", "x", no_answer=True, first_seen="sustained"),
        record("partial-reads", "pieces", "short path", no_answer=True, short_path=True,
               first_seen="sustained"),
    ]
    (cause,) = find_causes(results)
    assert cause.fix_first == "sustained-load"


def test_every_connection_reset_is_one_cause():
    results = [
        record("basic", "echo_basic", "echo: 0 bytes came back\n  observed bytes: 0\n"
               "  stream end: RST"),
        record("latency", "ping", "a ping-pong round trip failed\n  reason: receive failed "
               "after 0 of 100 bytes: ECONNRESET (Connection reset by peer)"),
    ]
    (cause,) = find_causes(results)
    assert (cause.cause, cause.fix_first, cause.consequences) == ("reset", "basic", ["latency"])


def test_rst_after_data_names_graceful_close_and_early_fin_names_partial_reads():
    linger = [
        record("partial-writes", "bursty", "x", stream_end="RST", observed_bytes=4641816),
        record("graceful-close", "late_read", "x", stream_end="RST", bytes_received=113152),
    ]
    (cause,) = find_causes(linger)
    assert (cause.cause, cause.fix_first, cause.consequences) == (
        "rst-after-data", "graceful-close", ["partial-writes"])
    one_recv = [
        record("throughput", "bulk", "x", stream_end="FIN", received_bytes=65482),
        record("partial-reads", "pieces", "x", stream_end="FIN", observed_bytes=52),
        record("latency", "ping", "a ping-pong round trip failed\n"
               "  reason: peer closed after 0 of 100 bytes"),
    ]
    (cause,) = find_causes(one_recv)
    assert (cause.cause, cause.fix_first) == ("early-fin", "partial-reads")
    assert cause.consequences == ["latency", "throughput"]


def test_same_stream_end_at_the_same_offset_is_one_cause():
    results = [
        record("throughput", "bulk", "x", stream_end="timeout", received_bytes=33554432),
        record("sendfile-large", "big", "x", stream_end="timeout", received_bytes=33554432),
        record("odd-sizes", "odd", "x", stream_end="timeout", received_bytes=4096),
    ]
    causes = find_causes(results)
    assert [(c.cause, c.fix_first, c.consequences) for c in causes] == [
        ("own", "odd-sizes", []),
        ("same-offset", "sendfile-large", ["throughput"]),
    ]
    assert causes[1].detail == "nothing more within the wait after 33554432 bytes"


def test_basic_failure_owns_the_families_that_failed_on_their_first_request():
    results = [
        record("basic", "http_basic", "the body of /basic.txt differs from the file"),
        record("fd-leak", "fd_leak_http", "the server did not serve a first request\n"
               "  probe: GET /sockspec-probe.txt: HTTP 200 OK, 100 body bytes"),
        record("restart", "restart_http", "the restarted server is not ready within 5 s"),
    ]
    causes = find_causes(results)
    assert [(c.cause, c.fix_first, c.consequences) for c in causes] == [
        ("basic-exchange", "basic", ["fd-leak"]), ("own", "restart", [])]


def test_independent_failures_keep_their_own_family_and_harness_trouble_is_no_cause():
    results = [
        record("throughput", "bulk", "digest differs"),
        record("partial-writes", "bursty", "first difference at offset 4648666"),
        {**record("latency", "ping", "the harness could not write ...", outcome="error"),
         "hint": ""},
        record("path-traversal", "symlink", "served", outcome="warning"),
        {**record("fd-leak", "x", "harness trouble", outcome="error"), "hint": ""},
    ]
    causes = find_causes(results)
    assert [(c.cause, c.fix_first) for c in causes] == [("own", "partial-writes"),
                                                        ("own", "throughput")]


def test_symptom_reads_old_files_from_the_evidence_lines():
    old = record("basic", "echo_basic", "echo of a 16-byte message: 0 bytes came back\n"
                 "  expected bytes: 16\n  observed bytes: 0\n  stream end: timeout")
    del old["facts"]
    found = symptom_of(old)
    assert (found.end, found.offset, found.dead) == ("timeout", 0, True)


def test_document_records_causes_compatibly_and_the_summary_and_report_show_them():
    items = [ItemResult(nodeid=f"n{i}", target="srv", profile="http", transport="tcp",
                        scenario=s, family=f, outcome="failed", hint="h",
                        evidence=f"{s} answered 400", facts={"status": 400})
             for i, (s, f) in enumerate([("http_basic", "basic"), ("odd", "odd-sizes"),
                                         ("pieces", "partial-reads")])]
    items.append(ItemResult(nodeid="ok", target="srv", profile="http", transport="tcp",
                            scenario="fine", family="backlog", outcome="passed"))
    document = build_document({"argv": []}, items, [])
    (cause,) = document["causes"]
    assert cause["fix_first"] == "basic"
    assert cause["consequences"] == ["partial-reads", "odd-sizes"]
    assert {r["nodeid"]: r["cause"] for r in document["results"]} == {
        "n0": "C1", "n1": "C1", "n2": "C1", "ok": ""}
    assert all(r["facts"] == {"status": 400} for r in document["results"] if r["cause"])
    lines = summary_lines(document)
    at = lines.index("root causes, the one to fix first first:")
    assert "every request got the same HTTP error status: HTTP 400" in lines[at + 1]
    assert "fix basic first; its consequences: partial-reads, odd-sizes (3 items)" in \
        lines[at + 2]
    html = render_html(document)
    assert 'id="causes"' in html and "Fix first: <b>basic</b>" in html


def test_report_of_an_older_file_without_causes_has_no_section():
    document = build_document({"argv": []}, [], [])
    del document["causes"]
    assert 'id="causes"' not in render_html(document)


# ------------------------------------------------------------------ liveness probe


class StubServer:
    """What liveness needs of a ServerUnderTest: profile, address, a process (None:
    not managed, like --connect)."""

    profile = "echo"
    protocol = None      # a built-in profile, not a declared protocol
    managed_process = None

    def __init__(self, address: TcpAddress) -> None:
        self.address = address


@pytest.fixture
def loopback_server():
    """A listener on 127.0.0.1 that handles each connection with ``behaviour``."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    state = {"behaviour": None, "stop": False, "held": []}

    def serve():
        while not state["stop"]:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            state["held"].append(conn)
            if state["behaviour"] is not None:
                threading.Thread(target=state["behaviour"], args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield StubServer(TcpAddress("127.0.0.1", listener.getsockname()[1])), state
    state["stop"] = True
    thread.join(5)
    listener.close()
    for conn in state["held"]:
        conn.close()


def slow_echo(delay: float):
    def handle(conn: socket.socket) -> None:
        data = conn.recv(65536)
        time.sleep(delay)
        try:
            conn.sendall(data)
        except OSError:
            pass
    return handle


def test_a_server_that_never_answers_is_marked_dead_and_short_paths_until_it_answers(
        loopback_server):
    server, state = loopback_server
    liveness = Liveness(confirm_timeout=0.5, reprobe_timeout=0.3)
    key = ("srv", "tcp")
    mark = liveness.after_failure(key, server, "echo_basic")   # accepts, never reads
    assert mark is not None and mark.probe.state == NO_ANSWER
    assert mark.facts(short_path=False) == {"no_answer": True, "first_seen": "echo_basic",
                                            "waited_s": 0.5}
    evidence = liveness.short_path(key, server)
    assert evidence.startswith("short path: the server did not answer a basic exchange "
                               "within 0.5 s (seen first in echo_basic)")
    assert "so the scenario was not run" in evidence
    state["behaviour"] = slow_echo(0.0)        # it answers again: the mark is cleared
    assert liveness.short_path(key, server) is None
    assert not liveness.is_dead(key)


def test_a_slow_server_is_not_declared_dead(loopback_server):
    server, state = loopback_server
    state["behaviour"] = slow_echo(1.0)        # answers, 1 s late: slow, not dead
    liveness = Liveness(confirm_timeout=3.0, reprobe_timeout=0.3)
    assert liveness.after_failure(("srv", "tcp"), server, "echo_basic") is None
    assert liveness.short_path(("srv", "tcp"), server) is None


def test_a_refused_connection_is_never_accepts():
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    found = probe(StubServer(TcpAddress("127.0.0.1", port)), 1.0)
    assert found.state == NEVER_ACCEPTS and found.dead


# ------------------------------------------------------------------ self-tests


@pytest.mark.selftest
def test_server_answering_400_to_everything_shows_one_cause_with_its_consequences():
    outcome = run_sockspec(*server_cmd(HOSTILE / "_always_400.py", "http", "tcp"),
                           "--transport", "tcp")
    assert outcome.document is not None, outcome.stderr[-2000:]
    causes = outcome.document["causes"]
    assert causes[0]["cause"] == "same-status" and causes[0]["detail"] == "HTTP 400"
    assert causes[0]["fix_first"] == "basic"
    broken = [r for r in outcome.document["results"] if r["outcome"] in ("failed", "error")]
    families = {r["family"] for r in broken}
    assert len(families) >= 5
    assert set(causes[0]["consequences"]) == families - {"basic"}
    assert {r["cause"] for r in broken} == {causes[0]["id"]}
    assert "root causes, the one to fix first first:" in outcome.stdout


@pytest.mark.selftest
def test_a_server_that_never_reads_takes_the_short_path_and_every_family_gets_a_verdict():
    families = ("basic", "partial-reads", "half-close", "binary-integrity")
    outcome = run_sockspec(*server_cmd(HOSTILE / "accepts_never_reads.py", "echo", "tcp"),
                           "--transport", "tcp", *families, timeout=300)
    assert outcome.document is not None, outcome.stderr[-2000:]
    results = outcome.document["results"]
    assert {r["family"] for r in results} == set(families)
    assert all(r["outcome"] == "failed" for r in results)
    short = [r for r in results if r["facts"].get("short_path")]
    first = [r for r in results if not r["facts"].get("short_path")]
    assert len(first) == 1 and len(short) == len(results) - 1
    assert "take a short path" in first[0]["evidence"]
    for r in short:
        assert r["evidence"].startswith("short path: the server did not answer a basic "
                                        f"exchange within 5 s (seen first in "
                                        f"{first[0]['scenario']})"), r["evidence"]
    (cause,) = outcome.document["causes"]
    assert (cause["cause"], cause["fix_first"]) == ("no-answer", "basic")


# Each faulty server comes out with its own family as the first cause: checked in
# tests/test_faulty_servers.py on the run that proves its family (no second run).
