"""Port allocation: a slice per process, free ports only, no lock-step between runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from sockspec.under_test.ports import (
    PORT_FLOOR,
    SLOT_NAME,
    PortAllocator,
    claimed_slot,
    ephemeral_port_floor,
)


def test_ports_come_from_the_processs_slice_below_the_ephemeral_range():
    allocator = PortAllocator()
    assert allocator.worker == claimed_slot()
    ports = {allocator.allocate() for _ in range(50)}
    assert all(PORT_FLOOR <= port < ephemeral_port_floor() for port in ports)
    assert max(ports) - min(ports) < allocator._size
    other = PortAllocator(worker=(claimed_slot() + 1) % 64)
    assert allocator._low + allocator._size <= other._low or other._low + other._size <= \
        allocator._low


def test_processes_named_alike_claim_different_slots_until_they_exit():
    """Nested runs: `sockspec run -n 2` inside xdist worker gw1 has its own gw0 and gw1.
    Workers named gw50 here, a slot no other run starts its search at."""
    code = ("import sys\n"
            "from sockspec.under_test.ports import PortAllocator\n"
            "print(PortAllocator().worker, flush=True)\n"
            "sys.stdin.read()\n")
    env = {**os.environ, "PYTEST_XDIST_WORKER": "gw50"}
    holders = [subprocess.Popen([sys.executable, "-c", code], env=env, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
               for _ in range(2)]
    try:
        slots = [int(holder.stdout.readline()) for holder in holders]
    finally:
        for holder in holders:
            holder.communicate("", timeout=30)
    assert slots[0] != slots[1] and min(slots) >= 50, slots
    # The kernel freed the names with the processes: binding one again works.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as again:
        again.bind(SLOT_NAME.format(slots[0]))


def test_a_port_something_listens_on_is_never_handed_out():
    allocator = PortAllocator()
    busy = []
    try:
        for offset in range(allocator._size - 1):   # occupy all but one port of the slice
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", allocator._low + offset))
            except OSError:
                sock.close()
                continue
            sock.listen()
            busy.append(sock)
        last = allocator._low + allocator._size - 1
        assert allocator.allocate() == last
    finally:
        for sock in busy:
            sock.close()


def test_two_runs_started_together_do_not_draw_in_step():
    first, second = PortAllocator(), PortAllocator()
    drawn = [(first.allocate(), second.allocate()) for _ in range(10)]
    assert sum(a == b for a, b in drawn) < 5
