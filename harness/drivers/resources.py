"""What a server under test holds and burns, read from /proc: CPU time, descriptors,
CLOSE_WAIT sockets; and its descriptor limit, lowered with prlimit().

For the scarce-resource families (fd-exhaustion, close-wait). Every function
takes the server's pids (ServerProcess.group_pids()); a pid that has exited
meanwhile counts as nothing.
"""

from __future__ import annotations

import os
import resource
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from sockspec.drivers.load import TCP_STATE_NAMES
from sockspec.errors import SockspecError
from sockspec.transport import Address, TcpAddress, abort, connect

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes, all their threads included.

    /proc/PID/stat fields 14 and 15 (utime, stime) in clock ticks, counted after
    the command name, which may itself hold spaces and parentheses.
    """
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = text.rpartition(")")[2].split()
        try:
            total += int(fields[11]) + int(fields[12])
        except (IndexError, ValueError):
            continue
    return total / CLOCK_TICKS


def runnable(pids: list[int]) -> bool:
    """True when a thread of these processes is running or waiting for a CPU (state R in
    /proc/PID/task/TID/stat), False when every thread sleeps (blocked in a system call,
    in a sleep) or the processes are gone."""
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                text = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            except OSError:
                continue
            if text.rpartition(")")[2].split()[:1] == ["R"]:
                return True
    return False


@dataclass(frozen=True)
class Busy:
    """How often a server was found runnable in a window: samples taken and how many
    found a thread running or waiting for a CPU, and the CPU seconds it burned."""

    samples: int
    runnable: int
    cpu_s: float
    wall_s: float

    @property
    def share(self) -> float:
        return self.runnable / self.samples if self.samples else 0.0


def sample_busy(pids: list[int], seconds: float, interval: float = 0.005) -> Busy:
    """Sample, every ``interval`` for ``seconds``, whether the processes are runnable.

    Unlike CPU time, this does not depend on how busy the machine is: a process that
    retries a failing system call in a loop is runnable (R) at every sample whether
    or not it gets a CPU, and one that waits is asleep (S) at every sample.
    """
    cpu_before, started = cpu_seconds(pids), time.monotonic()
    samples = busy = 0
    while time.monotonic() - started < seconds:
        samples += 1
        busy += runnable(pids)
        time.sleep(interval)
    return Busy(samples, busy, cpu_seconds(pids) - cpu_before, time.monotonic() - started)


@dataclass(frozen=True)
class LoweredLimit:
    pid: int
    soft: int
    before: tuple[int, int]


def lower_fd_limit(pids: list[int], headroom: int) -> list[LoweredLimit]:
    """Set each process's soft RLIMIT_NOFILE to what it holds now plus ``headroom``.

    The hard limit stays: a server that raises its own soft limit (as it should
    at start-up) has done so already; lowering it now is the test.
    """
    lowered = []
    for pid in pids:
        try:
            held = len(os.listdir(f"/proc/{pid}/fd"))
            before = resource.prlimit(pid, resource.RLIMIT_NOFILE)
            soft = min(held + headroom, before[1]) if before[1] != resource.RLIM_INFINITY \
                else held + headroom
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, before[1]))
        except (OSError, ValueError):
            continue  # it exited meanwhile
        lowered.append(LoweredLimit(pid, soft, before))
    return lowered


def socket_inodes(pids: list[int]) -> set[str]:
    """Inodes of every socket these processes hold a descriptor for."""
    found = set()
    for pid in pids:
        try:
            names = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for name in names:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{name}")
            except OSError:
                continue
            if link.startswith("socket:["):
                found.add(link[len("socket:["):-1])
    return found


def tcp_states_of_server(pids: list[int], port: int) -> dict[str, int]:
    """States of the TCP sockets with local port ``port``, in the server's own namespace.

    Read from /proc/PID/net/tcp{,6} of the server's first live process, so a
    server in a network namespace of its own (--isolate) is read where it runs.
    """
    for pid in pids:
        states: dict[str, int] = {}
        seen = False
        for table in ("tcp", "tcp6"):
            try:
                lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
            except OSError:
                continue
            seen = True
            for line in lines:
                fields = line.split()
                if int(fields[1].rpartition(":")[2], 16) == port:
                    name = TCP_STATE_NAMES.get(fields[3], fields[3])
                    states[name] = states.get(name, 0) + 1
        if seen:
            return states
    return {}


def open_idle(address: Address, count: int, timeout: float,
              total: float | None = None) -> tuple[list[socket.socket], list[str]]:
    """Open ``count`` connections and send nothing; return them and the connect errors.

    ``timeout`` bounds each connect (and stays the socket's timeout); ``total``, if
    given, bounds them all together: once it is spent, the connects left are not
    tried (each an error), so a server whose accept queue is full (a connect then
    waits for SYN retransmissions) costs ``total``, not ``count`` x ``timeout``.
    """
    held: list[socket.socket] = []
    errors: list[str] = []
    deadline = None if total is None else time.monotonic() + total
    for number in range(count):
        left = timeout if deadline is None else min(timeout, deadline - time.monotonic())
        if left <= 0:
            errors.append(f"connects {number + 1} to {count} not tried: the {total:g} s for "
                          f"all of them were spent")
            break
        try:
            sock = connect(address, left, nodelay=isinstance(address, TcpAddress))
        except (OSError, SockspecError) as exc:
            errors.append(str(exc))
            continue
        sock.settimeout(timeout)
        held.append(sock)
    return held, errors


def close_all(sockets: list[socket.socket], *, reset: bool = False) -> None:
    for sock in sockets:
        try:
            abort(sock) if reset else sock.close()
        except OSError:
            sock.close()
    sockets.clear()
