"""fd-exhaustion: out of descriptors, the server neither spins nor exits, and recovers.

When a server holds as many descriptors as RLIMIT_NOFILE allows, accept()
fails with EMFILE while the connection stays in the accept queue: the
listener stays readable, and a poll()/accept() loop that simply retries spins
at 100 % CPU until a descriptor comes free (the bug libuv, bun, wai, ranch and
nanomsg each fixed after users hit it). The scenario lowers the server's soft
RLIMIT_NOFILE with prlimit() right after it started, holds more connections
than it can then accept, samples its threads' states while saturated
(/proc/PID/task/TID/stat: a spinning thread is runnable at every sample however
busy the machine is, a waiting one asleep; the CPU seconds burned are reported
too, but they depend on the machine's load), and closes them again.
"""

import time

from sockspec.catalogue import Family, scenario
from sockspec.drivers.load import probe_service, settle_count
from sockspec.drivers.resources import close_all, lower_fd_limit, open_idle, sample_busy
from sockspec.verdict import MUST, expect

FD_EXHAUSTION = Family(
    name="fd-exhaustion",
    behaviour="out of descriptors, the server does not spin or exit, and serves again "
    "once connections close",
    hint="when accept() fails with EMFILE or ENFILE the connection stays queued and the "
    "listener stays readable: never retry at once (a poll/accept loop spins at 100 % CPU). "
    "Back off (stop polling the listener for ~100 ms), or keep one spare descriptor (close "
    "it, accept() and close() the pending connection, open it again); raise the soft "
    "RLIMIT_NOFILE with setrlimit() at start-up",
)

# Descriptors each server process may open beyond those it holds when the limit is lowered.
HEADROOM = 16
# Connections beyond what the headroom allows: these wait in the accept queue.
EXTRA_CONNECTIONS = 24
CONNECT_TIMEOUT = 5.0
SETTLE_STABLE_S = 0.3
SETTLE_TIMEOUT = 5.0
SATURATED_S = 1.0
# A server waiting for a descriptor is asleep at (nearly) every sample; one retrying
# accept() in a loop is runnable at (nearly) every one, whether it has a CPU or waits
# for one. 30 % leaves room for a server that wakes now and then to retry.
RUNNABLE_LIMIT = 0.30
PROBE_TIMEOUT = 5.0
RECOVERY_TIMEOUT = 10.0


def _exhaust(server, metrics) -> None:
    warm_up = probe_service(server, PROBE_TIMEOUT)
    expect(warm_up.ok, "the server did not serve a first request", probe=warm_up.detail)
    pids = server.process.group_pids()
    lowered = lower_fd_limit(pids, HEADROOM)
    expect(bool(lowered), "the server's processes exited before their limit could be lowered")
    limits = ", ".join(f"pid {x.pid}: soft {x.before[0]} -> {x.soft}" for x in lowered)
    wanted = HEADROOM * len(lowered) + EXTRA_CONNECTIONS
    held, connect_errors = open_idle(server.address, wanted, CONNECT_TIMEOUT,
                                     total=CONNECT_TIMEOUT)
    try:
        saturated = settle_count(server.fd_count, at_most=None, stable_for=SETTLE_STABLE_S,
                                 timeout=SETTLE_TIMEOUT)
        busy = sample_busy(server.process.group_pids(), SATURATED_S)
        alive_while_saturated = server.alive() and server.process.exit_status() is None
    finally:
        held_count = len(held)
        close_all(held)
    metrics.record("runnable_share_while_saturated", busy.share)
    metrics.record("cpu_share_while_saturated", busy.cpu_s / busy.wall_s)
    metrics.record("descriptors_while_saturated", saturated.value)
    facts = dict(
        rlimit_nofile=limits,
        connections_held=f"{held_count} of {wanted}"
        + (f"; connect failed {len(connect_errors)} times, first: {connect_errors[0]}"
           if connect_errors else ""),
        server_descriptors_while_saturated=f"{saturated.value} ({saturated.how})",
        runnable_while_saturated=f"at {busy.runnable} of {busy.samples} samples over "
        f"{busy.wall_s:.2f} s ({busy.share:.0%}; limit {RUNNABLE_LIMIT:.0%})",
        cpu_while_saturated=f"{busy.cpu_s:.2f} s of CPU in {busy.wall_s:.2f} s",
    )
    expect(busy.share < RUNNABLE_LIMIT,
           f"the server was runnable at {busy.share:.0%} of the samples while out of "
           f"descriptors: it retries accept() without waiting", **facts)
    expect(alive_while_saturated, "the server exited when it ran out of descriptors", **facts)
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while True:
        probe = probe_service(server, PROBE_TIMEOUT)
        if probe.ok or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    metrics.record("recovery_probe_s", probe.elapsed_s)
    expect(probe.ok, "the server did not serve a new client after the connections that "
           "exhausted its descriptors were closed", probe=probe.detail,
           server_alive=server.alive(), **facts)


@scenario(FD_EXHAUSTION, profiles=("echo",), fresh_server=True,
          level=MUST,
          reason="POSIX accept() fails with EMFILE and leaves the connection queued: a "
          "server that exits or retries at once (100 % CPU) denies service")
def test_fd_exhaustion_echo(server, metrics):
    """Out of descriptors, the server waits (no spinning), lives, and serves again.

    Trigger: the server's soft RLIMIT_NOFILE is lowered (prlimit) to the
    descriptors it holds plus 16; 16 + 24 idle connections are opened and held
    for 1 s, then closed.
    Verdict: its threads are runnable at under 30 % of samples taken every 5 ms
    while saturated, it does not exit, and an echo on a new connection comes back
    within 10 s of the close.
    """
    _exhaust(server, metrics)


@scenario(FD_EXHAUSTION, profiles=("http",), fresh_server=True,
          level=MUST,
          reason="POSIX accept() fails with EMFILE and leaves the connection queued: a "
          "server that exits or retries at once (100 % CPU) denies service")
def test_fd_exhaustion_http(server, metrics):
    """Out of descriptors, the server waits (no spinning), lives, and serves again.

    Trigger: the server's soft RLIMIT_NOFILE is lowered (prlimit) to the
    descriptors it holds plus 16; 16 + 24 idle connections are opened and held
    for 1 s, then closed.
    Verdict: its threads are runnable at under 30 % of samples taken every 5 ms
    while saturated, it does not exit, and a GET on a new connection gets its file
    within 10 s of the close.
    """
    _exhaust(server, metrics)
