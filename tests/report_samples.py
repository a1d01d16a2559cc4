"""Results documents for the HTML report tests: small and realistic, or large and synthetic."""

from __future__ import annotations

from sockspec.reports.results import ItemResult, build_document

RUN = {
    "started": "2025-11-24T05:40:12+0000", "hostname": "builder", "kernel": "Linux 6.1.0",
    "machine": "x86_64", "cpu_count": 2, "python": "3.11.2", "sockspec_version": "0.1.0",
    "argv": ["sockspec", "run", "--html", "out/report.html"],
    "sysctls": {"net.core.somaxconn": "4096", "net.ipv4.tcp_syncookies": "1"},
    "rlimit_nofile": {"soft": 20000, "hard": 20000}, "workers": 2,
}
HINT = "after read() returns 0, finish writing what is owed, then close()"
# A hostile server's output: must stay text. The URL is loopback on the discard
# port, so even a broken report could not send traffic off this machine.
HOSTILE = '<script>alert("owned")</script><img src="http://127.0.0.1:9/x.png">'
STDERR_TAIL = "  stderr tail: Traceback (most recent call last):\n  BrokenPipeError: [Errno 32]"


def item(target: str, transport: str, scenario: str, family: str, outcome: str = "passed",
         **extra: object) -> ItemResult:
    evidence = ""
    if outcome in ("failed", "error"):
        evidence = (f"{scenario}: 4096 bytes came back where 65536 were sent\n"
                    f"  stream end: RST\n  server: {target}\n{STDERR_TAIL} {HOSTILE}")
    return ItemResult(
        nodeid=f"scenarios/{family}.py::test_{scenario}[{target}-{transport}]",
        target=target, profile="echo", transport=transport, scenario=scenario, family=family,
        description=f"{scenario} behaves.", outcome=outcome, evidence=str(extra.pop(
            "evidence", evidence)), hint=HINT if family == "half_close" else f"fix {family}",
        duration_s=0.25,
        reproduce=f"sockspec run --target {target} --transport {transport} {scenario}",
        **extra)


def latency(base: float) -> dict[str, float]:
    metrics = {"latency_p50_ms": base, "latency_p90_ms": base * 2, "latency_p99_ms": base * 5,
               "latency_p999_ms": base * 9, "latency_max_ms": base * 20, "latency_count": 1000}
    for percentile, factor in ((25, 0.8), (50, 1), (90, 2), (99, 5), (99.9, 9)):
        metrics[f"latency_cdf_{percentile}_ms"] = base * factor
    return metrics


def sample_items() -> list[ItemResult]:
    return [
        item("ref", "tcp", "echo_basic", "basic"),
        item("ref", "unix", "echo_basic", "basic"),
        item("ref", "tcp", "drain", "half_close"),
        item("ref", "unix", "drain", "half_close"),
        item("ref", "tcp", "rtt", "latency", metrics=latency(0.05)),
        item("ref", "tcp", "conn_100", "concurrency",
             metrics={"concurrent_connections": 100, "setup_s": 0.05, "conn_per_s": 2000,
                      "fd_peak": 130}),
        item("flaky", "tcp", "echo_basic", "basic"),
        item("flaky", "unix", "echo_basic", "basic", "error"),
        item("flaky", "tcp", "drain", "half_close", "failed"),
        item("flaky", "unix", "drain", "half_close", "failed"),
        item("flaky", "tcp", "rtt", "latency", metrics=latency(0.2)),
        item("flaky", "tcp", "conn_100", "concurrency", "skipped",
             evidence="needs RLIMIT_NOFILE above 20000"),
        item("slow", "tcp", "echo_basic", "basic"),
        item("slow", "tcp", "drain", "half_close", "failed"),
        item("slow", "tcp", "rtt", "latency", metrics=latency(0.4)),
    ]


def sample_document() -> dict:
    targets = [{"name": n, "profile": "echo", "source": "targets.toml", "transports": t}
               for n, t in (("ref", ["tcp", "unix"]), ("flaky", ["tcp", "unix"]),
                            ("slow", ["tcp"]))]
    document = build_document(dict(RUN), sample_items(), targets)
    # Fields a later schema version adds: shown when present, never required.
    for result in document["results"]:
        if result["target"] == "slow" and result["outcome"] == "failed":
            result["pcap"] = "captures/slow-drain.pcap"
            result["packet_summary"] = "12:00:00.1 IP 127.0.0.1.5000 > 127.0.0.1.40000: [R.]"
            result["future_field"] = {"anything": [1, 2]}
    document["future_top_level"] = "ignored"
    return document


def mixed_document() -> dict:
    """sample_document() plus two clients under test (kind "client"), one failing."""
    document = sample_document()
    clients = [item(name, "tcp", scenario, family, outcome, kind="client")
               for name, scenario, family, outcome in (
                   ("ref-client", "client_half_close", "client_half_close", "passed"),
                   ("ref-client", "client_partial_reads", "client_reads", "passed"),
                   ("worse-client", "client_half_close", "client_half_close", "failed"))]
    extra = build_document(dict(RUN), clients, [])["results"]
    document["results"] += extra
    document["targets"] += [{"name": n, "profile": "echo", "source": "targets.toml",
                             "transports": ["tcp"], "kind": "client"}
                            for n in ("ref-client", "worse-client")]
    return document


def large_document(count: int, fail_every: int) -> dict:
    items = []
    targets = [f"target-{i:02d}" for i in range(10)]
    for index in range(count):
        target, transport = targets[index % 10], ("tcp", "tcp6", "unix")[index // 10 % 3]
        family = f"family{index // 30 % 12:02d}"
        outcome = "failed" if index % fail_every == 0 else "passed"
        metrics = latency(0.05 + index % 7 / 100) if family == "family03" else {}
        items.append(item(target, transport, f"scenario_{index // 30:03d}", family, outcome,
                          metrics=metrics))
    return build_document(dict(RUN), items,
                          [{"name": t, "profile": "echo", "source": "x.toml",
                            "transports": ["tcp", "tcp6", "unix"]} for t in targets])


def baseline_document() -> dict:
    """An older run of sample_document(): one regression, one fix, latencies halved."""
    document = sample_document()
    for result in document["results"]:
        key = (result["target"], result["transport"], result["scenario"])
        if key == ("flaky", "tcp", "drain"):
            result["outcome"], result["evidence"] = "passed", ""
        elif key == ("ref", "tcp", "echo_basic"):
            result["outcome"] = "failed"
        result["metrics"] = {name: value / 2 if name.startswith("latency_p") else value
                             for name, value in result["metrics"].items()}
    return document
