"""fd-exhaustion, idle-blackhole, close-wait and the split-point sweep (issue 20, part 2).

Unit tests of what they read from /proc, and end-to-end runs: the references
pass every new family over tcp, tcp6 and unix; each new faulty server fails
its family with the evidence the family promises. (That each faulty server
fails *only* its family is tests/test_faulty_servers.py.)
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time

import pytest
from sockspec_runner import FAULTY_DIR, run_sockspec, server_cmd

from sockspec.catalogue import load_catalogue
from sockspec.drivers.resources import (
    close_all,
    cpu_seconds,
    lower_fd_limit,
    open_idle,
    runnable,
    sample_busy,
    tcp_states_of_server,
)
from sockspec.scenarios.partial_reads_sweep import _ranges
from sockspec.transport import TcpAddress

NEW_FAMILIES = ("fd-exhaustion", "idle-blackhole", "close-wait")
SWEEPS = ("echo_split_point_sweep", "http_split_point_sweep")


def _child(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def _stop(child: subprocess.Popen) -> None:
    child.kill()
    child.wait(timeout=10)


# ---------------------------------------------------------------- the catalogue


def test_new_families_are_in_the_catalogue():
    specs = {s.id: s for s in load_catalogue()}
    for scenario_id, family, process_control in (
            ("fd_exhaustion_echo", "fd-exhaustion", True),
            ("fd_exhaustion_http", "fd-exhaustion", True),
            ("close_wait_echo", "close-wait", True),
            ("close_wait_http", "close-wait", True),
            ("idle_blackhole_echo", "idle-blackhole", False),
            ("idle_blackhole_http", "idle-blackhole", False),
            ("echo_split_point_sweep", "partial-reads", False),
            ("http_split_point_sweep", "partial-reads", False)):
        spec = specs[scenario_id]
        assert spec.family.name == family
        assert spec.needs_process_control is process_control
        assert set(spec.transports) == {"tcp", "tcp6", "unix"}


# ------------------------------------------------------------ what /proc says


def test_cpu_seconds_tell_a_spinning_process_from_a_sleeping_one():
    spinning = _child("import sys\nprint(flush=True)\nwhile True: pass")
    sleeping = _child("import time\nprint(flush=True)\ntime.sleep(60)")
    try:
        spinning.stdout.readline(), sleeping.stdout.readline()
        before = cpu_seconds([spinning.pid]), cpu_seconds([sleeping.pid])
        time.sleep(1.0)
        after = cpu_seconds([spinning.pid]), cpu_seconds([sleeping.pid])
    finally:
        _stop(spinning), _stop(sleeping)
    # It had some CPU (how much depends on the machine's load: only a generous floor).
    assert after[0] - before[0] > 0.05
    assert after[1] - before[1] < 0.05
    assert cpu_seconds([spinning.pid]) == 0    # gone: counts as nothing


def test_open_idle_spends_at_most_its_total_on_a_full_accept_queue():
    # listen(0), never accepting: past the first connection or two the SYNs are dropped
    # and each connect would wait its whole timeout.
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    address = TcpAddress("127.0.0.1", listener.getsockname()[1])
    started = time.monotonic()
    try:
        held, errors = open_idle(address, 10, 5.0, total=0.5)
        waited = time.monotonic() - started
        close_all(held)
    finally:
        listener.close()
    assert waited < 4.0                      # not 8 x 5 s: a bound that catches a hang
    assert len(held) < 10 and errors
    assert errors[-1].endswith("not tried: the 0.5 s for all of them were spent")


def test_thread_states_tell_a_spinning_process_from_a_sleeping_one_however_busy():
    # Runnable (R) whether it has a CPU or waits for one: the share does not fall when
    # the machine is busy, unlike CPU seconds (three spinners compete for the CPUs here).
    spinning = [_child("import sys\nprint(flush=True)\nwhile True: pass") for _ in range(3)]
    sleeping = _child("import time\nprint(flush=True)\ntime.sleep(60)")
    try:
        for child in (*spinning, sleeping):
            child.stdout.readline()
        spin = sample_busy([spinning[0].pid], 0.5)
        rest = sample_busy([sleeping.pid], 0.5)
    finally:
        for child in (*spinning, sleeping):
            _stop(child)
    assert spin.samples > 10 and spin.share > 0.9, spin
    assert rest.share == 0, rest
    assert not runnable([spinning[0].pid])    # gone: counts as asleep


def test_lower_fd_limit_makes_the_process_run_out_of_descriptors():
    code = ("import os, sys\nprint(flush=True)\nsys.stdin.readline()\nheld = []\n"
            "try:\n    while len(held) < 10000: held.append(os.open('/dev/null', os.O_RDONLY))\n"
            "except OSError as e: print(e.errno, len(held), flush=True)\nelse: print('none')\n")
    child = _child(code)
    try:
        child.stdout.readline()
        (lowered,) = lower_fd_limit([child.pid], headroom=10)
        soft, _hard = resource.prlimit(child.pid, resource.RLIMIT_NOFILE)
        assert soft == lowered.soft == len(os.listdir(f"/proc/{child.pid}/fd")) + 10
        child.stdin.write("go\n")
        child.stdin.flush()
        errno_text, opened = child.stdout.readline().split()
    finally:
        _stop(child)
    assert int(errno_text) == 24  # EMFILE
    assert int(opened) == 10


def test_tcp_states_of_server_count_close_wait_on_the_servers_port():
    """A socket whose peer sent FIN and that was not closed is in CLOSE_WAIT until close().

    /proc/PID/net/tcp lists every socket of the namespace. The listener binds without
    SO_REUSEADDR (create_server sets it), so the kernel gives it a port no other socket
    holds and no later connect() takes as its source port; with it, the port was once
    one that five client sockets of other tests, in CLOSE_WAIT, also had (8 == 3)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        accepted = [listener.accept()[0] for _ in clients]
        try:
            for client in clients:
                client.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + 5
            while (tcp_states_of_server([os.getpid()], port).get("CLOSE_WAIT", 0) < 3
                   and time.monotonic() < deadline):
                time.sleep(0.01)
            states = tcp_states_of_server([os.getpid()], port)
            assert states["CLOSE_WAIT"] == 3 and states["LISTEN"] == 1
            for sock in accepted:
                sock.close()
            assert tcp_states_of_server([os.getpid()], port).get("CLOSE_WAIT", 0) == 0
        finally:
            for sock in clients + accepted:
                sock.close()


def test_failing_offsets_are_shown_as_ranges():
    assert _ranges([1, 2, 3, 7, 9, 10]) == "1-3, 7, 9-10"
    assert _ranges([]) == ""


# ----------------------------------------------------------------- end to end


@pytest.mark.selftest
def test_references_pass_every_new_family():
    # Over tcp: CI's conformance-{tcp,tcp6,unix} envs run these families (the whole
    # catalogue, --strict) on the references over every transport.
    outcome = run_sockspec("--target", "reference-echo", "--target", "reference-http",
                           "--transport", "tcp", *NEW_FAMILIES, *SWEEPS)
    assert outcome.status == 0, outcome.stdout[-3000:]
    seen = {(r["scenario"], r["transport"]) for r in outcome.results(outcome="passed")}
    expected = {(s, "tcp") for s in ("fd_exhaustion_echo", "fd_exhaustion_http",
                                     "close_wait_echo", "close_wait_http",
                                     "idle_blackhole_echo", "idle_blackhole_http", *SWEEPS)}
    assert seen == expected
    spin = [r["metrics"]["runnable_share_while_saturated"]
            for r in outcome.results(family="fd-exhaustion")]
    assert all(share < 0.3 for share in spin)


FAULTY_EVIDENCE = [
    ("accept_spins_on_emfile", "echo", "fd-exhaustion",
     "while out of descriptors: it retries accept() without waiting"),
    ("head_read_in_accept_loop_http", "http", "idle-blackhole", "another client was not served"),
    ("ignores_fin_mid_request_http", "http", "close-wait", None),
    # The number of offsets tried is the request's length less one, which depends on
    # the Host header (127.0.0.1:PORT, [::1]:PORT, localhost): only the failing ones count.
    ("sniffs_method_first_recv_http", "http", "http_split_point_sweep",
     "byte offsets: 1-3"),
]


@pytest.mark.selftest
@pytest.mark.parametrize("transport", ["tcp", "tcp6", "unix"])
@pytest.mark.parametrize("name, profile, selector, says", FAULTY_EVIDENCE,
                         ids=[case[0] for case in FAULTY_EVIDENCE])
def test_faulty_server_fails_the_new_family_with_evidence(name, profile, selector, says,
                                                          transport):
    # required: idle-blackhole is a SHOULD family, a failure only with --strict.
    outcome = run_sockspec(*server_cmd(FAULTY_DIR / f"{name}.py", profile, transport),
                           "--transport", transport, selector, required=True)
    assert outcome.status == 1, outcome.stdout[-3000:]
    (result,) = outcome.results()
    assert result["outcome"] == "failed"
    if says is None:  # close-wait: CLOSE_WAIT sockets over TCP, descriptors over Unix
        says = ("stayed in CLOSE_WAIT" if transport != "unix"
                else "more descriptors after its clients sent FIN or RST")
    assert says in result["evidence"], result["evidence"]


def test_process_control_families_are_skipped_for_a_running_server(tmp_path):
    """--connect: fd-exhaustion and close-wait need the process; the other two run."""
    from sockspec.reference.server import ReferenceServer
    from sockspec.transport import TcpAddress

    with ReferenceServer(TcpAddress("127.0.0.1", 0), "echo") as address:
        outcome = run_sockspec("--connect", f"tcp:127.0.0.1:{address.port}", "--profile", "echo",
                               "fd-exhaustion", "close-wait", "echo_split_point_sweep")
    outcomes = {r["scenario"]: r["outcome"] for r in outcome.results()}
    assert outcomes == {"fd_exhaustion_echo": "skipped", "close_wait_echo": "skipped",
                        "echo_split_point_sweep": "passed"}, outcome.stdout[-2000:]

