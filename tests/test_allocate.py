"""Port allocation: the worker's slice, free ports only, no lock-step between runs."""

from __future__ import annotations

import socket

from sockspec.under_test.ports import PORT_FLOOR, PortAllocator, ephemeral_port_floor


def test_ports_come_from_the_workers_slice_below_the_ephemeral_range():
    for worker in (0, 5):
        allocator = PortAllocator(worker=worker)
        ports = {allocator.allocate() for _ in range(50)}
        assert all(PORT_FLOOR <= port < ephemeral_port_floor() for port in ports)
        assert max(ports) - min(ports) < allocator._size
    assert not {PortAllocator(worker=0).allocate() for _ in range(20)} & \
        {PortAllocator(worker=1).allocate() for _ in range(20)}


def test_a_port_something_listens_on_is_never_handed_out():
    allocator = PortAllocator(worker=7)
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
    first, second = PortAllocator(worker=3), PortAllocator(worker=3)
    drawn = [(first.allocate(), second.allocate()) for _ in range(10)]
    assert sum(a == b for a, b in drawn) < 5
