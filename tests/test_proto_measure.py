"""The measurement families and wire-level scenarios for declared protocols
(scenarios/proto_measure.py, proto_wire.py) are proven on the two example protocols.

* the correct servers (Python, and C when a compiler exists) pass every one of
  them over tcp, tcp6 and unix (wire-level: TCP only);
* each faulty variant in examples/faulty/ (run on each protocol) and
  examples/<protocol>/faulty/ (FAMILY, ALSO_FAILS, TRANSPORTS in the file:
  tests/example_variants.py) fails its own family over tcp and over each other
  transport it names. Over tcp the kv variants run the whole generic catalogue
  (every DECLARED scenario, G1's families too) and nothing else may fail; the frames
  variants are the same one-method defects on the other framing and run only the
  measurement families of the group (CI time: a whole generic run costs ~20 s per
  server). Over their other transports they run their own family only.

Several servers share one `sockspec run` (a targets file of several [[server]]s),
so the native engines compile once per run (~10 s), not once per server. The
levels are all required (sockspec_runner.every_level_required), as for
fixtures/faulty.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from example_variants import EXAMPLES, PROTOCOLS, Variant, faulty_servers
from sockspec_runner import run_sockspec

MEASURE_FAMILIES = ("latency", "latency-distribution", "connection-rate", "sustained-load",
                    "concurrent-connections", "slow-client-isolation", "throughput")
# Every scenario of proto_measure.py and proto_wire.py.
SCENARIOS = ("proto_latency_median", "proto_latency_distribution", "proto_connection_rate",
             "proto_sustained_load", "proto_concurrent_connections",
             "proto_slow_client_isolation", "proto_throughput",
             "proto_wire_every_byte_a_segment", "proto_wire_request_and_fin_in_one_segment",
             "proto_wire_backlog_syn_by_syn")
TRANSPORTS = ("tcp", "tcp6", "unix")


def variants(protocol: str) -> list[Variant]:
    """Every faulty variant of ``protocol`` that proves one of the measurement families
    (tests/example_variants.py; G1's variants prove theirs)."""
    return [v for v in faulty_servers(MEASURE_FAMILIES) if v.protocol == protocol]


def write_targets(folder: Path, protocol: str, servers: dict[str, list[str]]) -> Path:
    """A targets file of several servers of ``protocol``; ``servers``: name -> the command
    before its address options."""
    lines = [f"protocols = [{str(EXAMPLES / protocol / 'protocol.toml')!r}]".replace("'", '"')]
    for name, command in servers.items():
        quoted = ", ".join(f'"{part}"' for part in command)
        lines += ["", "[[server]]", f'name = "{name}"', f'profile = "{protocol}"',
                  f'tcp = [{quoted}, "-h", "{{host}}", "-p", "{{port}}"]',
                  f'unix = [{quoted}, "-u", "{{path}}"]', "ipv6 = true"]
    path = folder / f"{protocol}-targets.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def c_servers(folder: Path) -> dict[str, Path]:
    """The example C servers built into ``folder``, or {} when there is no compiler."""
    if shutil.which(os.environ.get("CC", "cc")) is None:
        return {}
    done = subprocess.run([sys.executable, str(EXAMPLES / "build.py"), "--out", str(folder)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return {p: folder / f"{p}-server" for p in PROTOCOLS if (folder / f"{p}-server").exists()}


def unexpected_failures(outcome, allowed: set[str], target: str | None = None) -> list:
    return sorted({(r["target"], r["family"], r["scenario"], r["transport"], r["outcome"])
                   for r in outcome.results() if r["outcome"] in ("failed", "error")
                   and r["family"] not in allowed and (target is None or r["target"] == target)})


# -- fast: the driver's choices -------------------------------------------------------------


def test_every_measure_family_has_a_faulty_variant_in_each_example():
    for protocol in PROTOCOLS:
        proven = {v.family for v in variants(protocol)}
        assert proven == set(MEASURE_FAMILIES), (protocol, sorted(set(MEASURE_FAMILIES) - proven))


def test_fixed_exchanges_of_the_examples_are_their_first_wire_bytes():
    from sockspec.drivers.declared import fixed_exchange
    from sockspec.protocol.declared import load_protocol_file

    kv = load_protocol_file(EXAMPLES / "kv" / "protocol.toml")[0]
    frames = load_protocol_file(EXAMPLES / "frames" / "protocol.toml")[0]
    assert fixed_exchange(kv).message == b"PING\r\n" and fixed_exchange(kv).reply == b"+PONG\r\n"
    assert fixed_exchange(frames).reply == b"\x00\x00\x00\x09\x83frames/1"
    # {n} changes per exchange, a regex is no byte string: rendered and judged each time.
    assert fixed_exchange(kv, kv.exchange("set")) is None
    assert fixed_exchange(kv, kv.exchange("incr")) is None
    # {payload} keeps its value on a connection: still the same bytes every time.
    echo = fixed_exchange(frames, frames.exchange("echo"))
    assert echo.reply[4:] == b"\x81" + echo.message[5:]


KV_COUNTER_FIRST = """
[[protocol]]
name = "kvn"
framing = "crlf"
[[protocol.exchange]]
name = "set"
send = "SET key{n} value{n}"
expect = "+OK"
[[protocol.exchange]]
name = "incr"
send = "INCR hits"
expect_regex = '^:[0-9]+$'
[protocol.properties]
keeps_connection = true
concurrent = true
"""


@pytest.fixture
def kv_server(tmp_path):
    """The kv example server on a Unix socket of ``tmp_path``, stopped by its group."""
    from sockspec.errors import ConnectError
    from sockspec.transport import UnixAddress, connect

    address = UnixAddress(str(tmp_path / "kv.sock"))
    process = subprocess.Popen([sys.executable, str(EXAMPLES / "kv" / "server.py"), "-u",
                                address.path], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, "the kv server exited"
            try:
                connect(address, 1.0).close()
                break
            except ConnectError:
                assert time.monotonic() < deadline, "the kv server never accepted"
                time.sleep(0.02)
        yield address
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def test_a_first_exchange_that_is_not_fixed_is_run_by_conversations(kv_server):
    from sockspec.drivers.declared import (
        declared_connection_rate,
        declared_ping_pong,
        declared_throughput,
        hold_declared,
    )
    from sockspec.measure.connrate import ConnRateRequest
    from sockspec.protocol.declared import parse_protocols

    protocol = parse_protocols(Path("kvn.toml"), KV_COUNTER_FIRST)[0]
    pong = declared_ping_pong(kv_server, protocol, count=50, warmup=5, timeout_s=5.0)
    assert pong.ok and pong.completed == 50 and pong.engine == "conversation", pong.describe()
    assert pong.histogram.summary().count == 50
    rate = declared_connection_rate(kv_server, protocol,
                                    ConnRateRequest(duration_s=0.2, timeout_s=5.0))
    assert rate.succeeded and not rate.failures and rate.engine == "conversation"
    hold = hold_declared(kv_server, protocol, 20, timeout_s=8.0)
    assert hold.verified == 20 and not hold.failures, hold
    # A wrong declaration is caught, not timed: the reply is judged every time.
    wrong = parse_protocols(Path("w.toml"), KV_COUNTER_FIRST.replace('"+OK"', '"+YES"'))[0]
    bad = declared_ping_pong(kv_server, wrong, count=5, warmup=0, timeout_s=5.0)
    assert not bad.ok and bad.failures == {"mismatch": 1}, bad.describe()
    kv = parse_protocols(Path("kv.toml"),
                         (EXAMPLES / "kv" / "protocol.toml").read_text())[0]
    moved = declared_throughput(kv_server, kv, 8 * 1024 * 1024, timeout_s=10.0,
                                deadline_s=60.0, rng=random.Random(0))
    assert moved.verified and moved.rounds == 2, moved.describe()


# -- slow: the proofs ------------------------------------------------------------------------


def proto_items(outcome, target: str) -> list[dict]:
    return [r for r in outcome.results(target=target) if r["scenario"] in SCENARIOS]


@pytest.mark.selftest
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_correct_servers_pass_the_measure_families(protocol, tmp_path):
    servers = {f"{protocol}-python": [sys.executable, str(EXAMPLES / protocol / "server.py")]}
    built = c_servers(tmp_path)
    if protocol in built:
        servers[f"{protocol}-c"] = [str(built[protocol])]
    targets = write_targets(tmp_path, protocol, servers)
    outcome = run_sockspec("--targets", str(targets), *SCENARIOS, required=True)
    assert outcome.document is not None, outcome.stderr[-2000:]
    for name in servers:
        items = proto_items(outcome, name)
        ran = {(r["scenario"], r["transport"]) for r in items}
        # Every scenario on every transport of the target; the wire-level ones are
        # skipped over unix (no segments to craft) and where no namespace can be built.
        assert len(ran) == len(SCENARIOS) * len(TRANSPORTS), (name, sorted(ran))
        assert all(r["outcome"] == "skipped" for r in items
                   if r["scenario"].startswith("proto_wire") and r["transport"] == "unix")
        bad = [(r["scenario"], r["transport"], r["outcome"], r["evidence"][:300])
               for r in items if r["outcome"] not in ("passed", "skipped")]
        assert not bad, (name, bad)
        assert all(r["outcome"] == "passed" for r in items
                   if r["family"] in MEASURE_FAMILIES), name
    assert outcome.status == 0, outcome.stdout[-3000:]


# The scenario of each measurement family (proto_measure.py: one each).
FAMILY_SCENARIO = dict(zip(MEASURE_FAMILIES, SCENARIOS[:len(MEASURE_FAMILIES)], strict=True))


def other_transports(variant: Variant) -> list[str]:
    return [t for t in variant.transports if t != "tcp"]


def selection(chosen: list[Variant], over_tcp: str) -> str:
    """A -k expression: ``over_tcp`` (the scenarios every variant runs over tcp), and
    each variant's own family over its other transports."""
    items = [f"test_{FAMILY_SCENARIO[v.family]}[{v.path.stem}-{t}]"
             for v in chosen for t in other_transports(v)]
    return " or ".join([f"({over_tcp} and tcp])", *items])


def run_faulty(tmp_path: Path, protocol: str, chosen: list[Variant], *families: str,
               over_tcp: str = "proto_"):
    """One run of several faulty servers: ``over_tcp`` (of ``families``, when given)
    over tcp, and each variant's own family over its other transports (one run, so the
    native engines compile once)."""
    servers = {variant.path.stem: variant.command for variant in chosen}
    targets = write_targets(tmp_path, protocol, servers)
    outcome = run_sockspec("--targets", str(targets), *families, "--",
                           "-k", selection(chosen, over_tcp), required=True)
    assert outcome.document is not None, outcome.stderr[-2000:]
    assert outcome.status == 1, "faulty servers must make the run fail"
    return outcome


def check_other_transports_fail(outcome, variant: Variant) -> None:
    """Its own family fails, with evidence, over each of its other transports too."""
    for transport in other_transports(variant):
        mine = outcome.results(target=variant.path.stem, family=variant.family,
                               transport=transport)
        assert mine, f"no {variant.family} scenario ran for {variant.name} over {transport}"
        assert any(r["outcome"] == "failed" and r["evidence"].strip() for r in mine), \
            (f"{variant.family} did not fail on {variant.name} over {transport}: "
             + "; ".join(f"{r['scenario']} {r['outcome']}: {r['evidence'][:600]}"
                         for r in mine))


def check_own_family_fails(outcome, variant: Variant) -> None:
    mine = outcome.results(target=variant.path.stem, family=variant.family, transport="tcp")
    assert mine, f"no {variant.family} scenario ran for {variant.name}"
    failed = [r for r in mine if r["outcome"] == "failed"]
    assert failed, (f"{variant.family} did not fail on {variant.name}: "
                    + "; ".join(f"{r['scenario']} {r['outcome']}: {r['evidence'][:600]}"
                                for r in mine))
    assert all(r["evidence"].strip() for r in failed)


def check_no_other_fails(outcome, variant: Variant) -> None:
    unexpected = unexpected_failures(outcome, {variant.family, *variant.also_fails},
                                     variant.path.stem)
    assert not unexpected, f"{variant.name} also failed: {unexpected}"


# The kv variants, in two runs of about the same length (CI balances them over -n 2).
KV_GROUPS = ([0, 2, 4, 6], [1, 3, 5])


@pytest.mark.selftest
@pytest.mark.parametrize("group", range(len(KV_GROUPS)), ids=["kv-a", "kv-b"])
def test_kv_variants_fail_their_family_and_no_other(group, tmp_path):
    every = variants("kv")
    chosen = [every[i] for i in KV_GROUPS[group] if i < len(every)]
    # The whole generic catalogue: every DECLARED scenario, whoever wrote it.
    outcome = run_faulty(tmp_path, "kv", chosen)
    for variant in chosen:
        check_own_family_fails(outcome, variant)
        check_no_other_fails(outcome, variant)
        check_other_transports_fail(outcome, variant)


@pytest.mark.selftest
def test_frames_variants_fail_their_family(tmp_path):
    chosen = variants("frames")
    families = sorted({variant.family for variant in chosen})
    outcome = run_faulty(tmp_path, "frames", chosen, *families)
    for variant in chosen:
        check_own_family_fails(outcome, variant)
        # Only these families ran: none but its own (and those it declares) may fail.
        check_no_other_fails(outcome, variant)
        check_other_transports_fail(outcome, variant)
