"""The multi-host path: a server in one network namespace, execnet generators in two others.

The lab's addresses (10.x.y.z) exist only inside namespaces this test creates
and deletes; the initial namespace never has a route to them.
"""

import os
import signal
import subprocess
from dataclasses import asdict

import pytest
from measure_servers import SERVER_READY_TIMEOUT, start_epoll_echo

from sockspec.errors import AddressError
from sockspec.measure import netns
from sockspec.measure.concurrent import HoldRequest, HoldResult, merge_results
from sockspec.measure.coordinator import Coordinator, merge_latency, ping_pong_params
from sockspec.measure.latency import PingPongRequest
from sockspec.measure.sockets import resolve_destination

JOB_TIMEOUT = 60.0

UNAVAILABLE = netns.unavailable_reason()


def test_layout_names_fit_and_addresses_are_private():
    layout = netns.lab_layout("1234abcd", 3, (211, 7))
    assert layout.server.address == "10.211.7.1"
    assert [g.address for g in layout.generators] == ["10.211.7.10", "10.211.7.11", "10.211.7.12"]
    names = [layout.server.interface, *(g.interface for g in layout.generators),
             *layout.server_ports]
    assert len(set(names)) == len(names) and all(len(n) <= 15 for n in names)
    assert len(set(layout.namespaces)) == 4
    assert layout.generators[0].python_spec("/py").startswith(
        f"popen//python=ip netns exec {layout.generators[0].namespace} /py")
    with pytest.raises(netns.LabError):
        netns.lab_layout("x", 0, (1, 1))


def test_lab_addresses_are_refused_outside_a_namespace():
    with pytest.raises(AddressError, match="not a loopback"):
        resolve_destination("tcp:10.211.7.1:80")


def start_server_in(host: netns.LabHost) -> tuple[subprocess.Popen, int]:
    return start_epoll_echo(["-h", host.address, "-p", "0", "--lifetime", "120"],
                            prefix=host.command([]), what=f"server in {host.namespace}")


def net_namespace_of(pid: int) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


@pytest.mark.skipif(UNAVAILABLE is not None, reason=f"no namespace lab here: {UNAVAILABLE}")
def test_generators_in_two_namespaces_drive_a_server_in_a_third():
    with netns.netns_lab(generators=2) as lab:
        names = lab.namespaces
        server, port = start_server_in(lab.server)
        try:
            target = f"tcp:{lab.server.address}:{port}"
            with Coordinator([g.python_spec() for g in lab.generators]) as coordinator:
                spaces = {net_namespace_of(pid) for pid in coordinator.pids}
                assert len(spaces) == 2 and net_namespace_of(os.getpid()) not in spaces
                latency = merge_latency(coordinator.run(
                    "ping_pong", [ping_pong_params(target, PingPongRequest(count=500, warmup=20))
                                  for _ in lab.generators], JOB_TIMEOUT))
                requests = [asdict(HoldRequest((target,), 300, first_index=300 * i))
                            for i in range(2)]
                held = coordinator.hold(requests, JOB_TIMEOUT)
                coordinator.release_all()
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(SERVER_READY_TIMEOUT)
        addresses = subprocess.run(["ip", "-br", "addr"], capture_output=True, text=True).stdout
        assert lab.server.address not in addresses  # the lab exists only in its namespaces
    assert latency.ok and latency.completed == latency.histogram.count == 1000
    merged = merge_results([HoldResult.from_wire(r) for r in held.results])
    assert merged.verified == 600 and not merged.failures
    assert not set(names) & netns.existing_namespaces()


@pytest.mark.skipif(UNAVAILABLE is not None, reason=f"no namespace lab here: {UNAVAILABLE}")
def test_the_lab_is_deleted_when_the_body_fails():
    with pytest.raises(RuntimeError, match="boom"), netns.netns_lab(generators=1) as lab:
        names = lab.namespaces
        assert set(names) <= netns.existing_namespaces()
        raise RuntimeError("boom")
    assert not set(names) & netns.existing_namespaces()
