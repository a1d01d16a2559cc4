"""echo and http as built-in declarations (sockspec.protocol.builtin): the same
[[protocol]] mechanism as a user's protocol.

* each built-in declaration parses and meets the needs its profile can meet;
* a generic scenario of the user's own (``profiles=(DECLARED,)``) runs on the echo and
  http reference servers, on their declarations, and a need the declaration does not
  meet skips with what it lacks; the catalogue's own generic scenarios stay off echo
  and http (they have their own scenarios of those families);
* (selftest) the whole generic catalogue passes on the reference echo and http servers
  (over tcp and unix) when the built-in declarations are given as a declared protocol:
  the declarations say what the servers do.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from sockspec_runner import run_sockspec

from sockspec.catalogue import DECLARED, load_catalogue
from sockspec.protocol.builtin import DECLARATIONS, builtin_protocol

# What each built-in declaration meets (sockspec.protocol.declared.NEEDS).
MEETS = {
    "echo": {"exchange", "answers_after_fin", "keeps_connection", "concurrent", "binary"},
    "http": {"exchange", "answers_after_fin", "concurrent"},
}
NEEDS = ("exchange", "answers_after_fin", "keeps_connection", "concurrent", "binary",
         "large_reply")


@pytest.mark.parametrize("profile", sorted(MEETS))
def test_the_builtin_declarations_meet_what_their_profile_can(profile):
    protocol = builtin_protocol(profile)
    assert protocol.name == profile and protocol.version == 1
    assert protocol.source == str(DECLARATIONS / f"{profile}.toml")
    assert {need for need in NEEDS if protocol.meets(need)} == MEETS[profile]


def test_a_users_protocol_may_not_take_a_builtin_name(tmp_path):
    from sockspec.protocol.declared import ProtocolError, load_protocol_file

    path = tmp_path / "mine.toml"
    path.write_text((DECLARATIONS / "echo.toml").read_text())
    with pytest.raises(ProtocolError, match="'echo' is a built-in profile; choose another"):
        load_protocol_file(path)


def test_the_catalogues_generic_scenarios_stay_off_echo_and_http():
    generic = [s for s in load_catalogue() if DECLARED in s.profiles]
    assert generic
    for spec in generic:
        assert spec.applies_to("kv") and not spec.applies_to("echo") \
            and not spec.applies_to("http"), spec.id


USER_MODULE = '''
from sockspec import DECLARED, Family, expect, scenario
from sockspec.drivers.declared import run_exchanges

ANY_PROTOCOL = Family(name="any-protocol", behaviour="declared exchanges are answered",
                      hint="answer each request as the protocol says")


@scenario(ANY_PROTOCOL, profiles=(DECLARED,), needs=("exchange",))
def test_mine_every_exchange(server):
    """Every exchange of the server's declaration is answered as declared."""
    outcomes = run_exchanges(server.protocol, server.address, 5.0)
    expect(all(o.ok for o in outcomes), f"{server.protocol.name}: {outcomes[-1].problem}")


@scenario(ANY_PROTOCOL, profiles=(DECLARED,), needs=("large_reply",))
def test_mine_large_reply(server):
    """Never runs on echo or http: their declarations have no large reply."""
    expect(False, "ran without its need")
'''


def test_a_users_generic_scenario_runs_on_echo_and_http_servers(tmp_path):
    module = tmp_path / "test_mine.py"
    module.write_text(textwrap.dedent(USER_MODULE))
    outcome = run_sockspec(str(module), "--target", "reference-echo", "--target",
                           "reference-http", "--transport", "tcp", "--transport", "unix",
                           timeout=180)
    assert outcome.document is not None, outcome.stderr[-2000:]
    results = {(r["scenario"], r["target"], r["transport"]): r for r in outcome.results()}
    assert len(results) == 8, sorted(results)
    for target in ("reference-echo", "reference-http"):
        profile = target.removeprefix("reference-")
        for transport in ("tcp", "unix"):
            ran = results[("mine_every_exchange", target, transport)]
            assert ran["outcome"] == "passed", ran["evidence"]
            skipped = results[("mine_large_reply", target, transport)]
            assert skipped["outcome"] == "skipped"
            assert (f"declare a [protocol.large_reply] sequence in [[protocol]] "
                    f"{profile!r} ({DECLARATIONS / (profile + '.toml')})") in \
                skipped["evidence"], skipped["evidence"]
    assert outcome.status == 0, outcome.stdout[-2000:]


# Generic families that run on each declaration (http keeps no connection, so no
# ping-pong latency; it carries no test bytes back, so no binary-integrity).
RAN = {
    "echo": {"basic", "concurrency", "partial-reads", "half-close", "graceful-close",
             "client-abort", "fd-leak", "binary-integrity", "latency", "connection-rate",
             "concurrent-connections"},
    "http": {"basic", "concurrency", "partial-reads", "half-close", "graceful-close",
             "client-abort", "fd-leak", "connection-rate", "concurrent-connections"},
}


def declared_copy(folder: Path, profile: str) -> Path:
    """The built-in declaration as a user's file, under another name."""
    path = folder / f"{profile}-declared.toml"
    text = (DECLARATIONS / f"{profile}.toml").read_text()
    path.write_text(text.replace(f'name = "{profile}"', f'name = "{profile}-declared"', 1))
    return path


@pytest.mark.selftest
def test_the_generic_catalogue_passes_on_the_reference_servers_by_their_declarations(tmp_path):
    lines = [f"protocols = {json.dumps([str(declared_copy(tmp_path, p)) for p in MEETS])}"]
    for profile in MEETS:
        base = [sys.executable, "-m", "sockspec.reference.server", "--profile", profile]
        root = ["-r", "{root}"] if profile == "http" else []
        lines += ["", "[[server]]", f'name = "reference-{profile}-declared"',
                  f'profile = "{profile}-declared"',
                  f"tcp = {json.dumps([*base, '-h', '{host}', '-p', '{port}', *root])}",
                  f"unix = {json.dumps([*base, '-u', '{path}', *root])}", "ipv6 = true"]
    targets = tmp_path / "targets.toml"
    targets.write_text("\n".join(lines) + "\n")
    # tcp and unix (tcp6 is tcp's code on another address; CI time).
    outcome = run_sockspec("--targets", str(targets), "--transport", "tcp", "--transport",
                           "unix", "--", "-k", "proto_", required=True)
    assert outcome.document is not None, outcome.stderr[-2000:]
    for profile in MEETS:
        mine = outcome.results(target=f"reference-{profile}-declared")
        assert {r["transport"] for r in mine} == {"tcp", "unix"}
        ran = [r for r in mine if r["outcome"] != "skipped"]
        bad = [(r["scenario"], r["transport"], r["outcome"], r["evidence"][:300])
               for r in ran if r["outcome"] != "passed"]
        assert not bad, (profile, bad)
        # The generic families whose needs the declaration meets ran.
        assert {r["family"] for r in ran} >= RAN[profile], profile
    assert outcome.status == 0, outcome.stdout[-3000:]
