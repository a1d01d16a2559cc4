"""The watchdog process of one harness process (see harness/process/lifeline.py).

Run as ``python -I -S watchdog.py HARNESS_PID`` in a session of its own, with a
pipe from the harness on stdin carrying one command a line:

    G KEY PGID DEADLINE TOKEN   a program's process group, its lifetime's end
                                (CLOCK_MONOTONIC seconds) and environment token
    K KEY PID:START ...         processes attributed to it (pid, starttime)
    D KEY                       it was stopped: forget it

When the harness process ends (its pidfd becomes readable) everything still
registered is killed with SIGKILL, then the harness pid's directories and
network namespaces are removed (sockspec.cleanup). A program whose lifetime's
end passes while the harness lives on (stopped, hung) is killed then.

Nothing that cannot be attributed is signalled: a process is killed only if it
is a registered (pid, starttime), carries the program's token, is a member of
its process group or session while one of those is too (the group id cannot be
reused while a member lives), or descends from one of these. Standard library
only; the harness itself is not imported (only sockspec.cleanup, for the sweep).
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

KILL_FOR_S = 5.0        # keep looking for newly forked processes this long
EXIT_WAIT_S = 60.0      # after end of file, how long the harness may take to exit


@dataclass
class Group:
    pgid: int
    deadline: float
    token: bytes
    known: set[tuple[int, int]] = field(default_factory=set)


def read_table() -> dict[int, tuple[int, int, int, int, str]]:
    """pid -> (ppid, pgid, session, starttime, state)."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                text = f.read().decode("ascii", "replace")
        except OSError:
            continue
        rest = text.rpartition(")")[2].split()
        try:
            table[int(name)] = (int(rest[1]), int(rest[2]), int(rest[3]), int(rest[19]), rest[0])
        except (IndexError, ValueError):
            continue
    return table


def has_token(pid: int, token: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return token in f.read()
    except OSError:
        return False


def targets(group: Group, table: dict[int, tuple[int, int, int, int, str]],
            spared: set[int]) -> dict[int, int]:
    """pid -> starttime of every live process of ``group``."""
    seeds = {pid for pid, (_, _, _, start, _) in table.items()
             if (pid, start) in group.known or has_token(pid, group.token)}
    if any(table[pid][1] == group.pgid or table[pid][2] == group.pgid for pid in seeds):
        seeds |= {pid for pid, row in table.items()
                  if row[1] == group.pgid or row[2] == group.pgid}
    children: dict[int, list[int]] = {}
    for pid, row in table.items():
        children.setdefault(row[0], []).append(pid)
    found: set[int] = set()
    stack = [pid for pid in seeds if pid not in spared]
    while stack:
        pid = stack.pop()
        if pid in found or pid in spared:
            continue
        found.add(pid)
        stack.extend(children.get(pid, ()))
    return {pid: table[pid][3] for pid in found if table[pid][4] not in ("Z", "X")}


def kill(pid: int, start: int) -> None:
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            current = int(f.read().decode("ascii", "replace").rpartition(")")[2].split()[19])
        if current == start:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except (OSError, ValueError, IndexError):
        pass
    finally:
        os.close(pidfd)


def kill_group(group: Group, spared: set[int]) -> int:
    """SIGKILL every process of ``group`` until none is left (bounded); how many."""
    killed: set[tuple[int, int]] = set()
    end = time.monotonic() + KILL_FOR_S
    while time.monotonic() < end:
        found = targets(group, read_table(), spared)
        if not found:
            break
        for pid, start in found.items():
            kill(pid, start)
            killed.add((pid, start))
        time.sleep(0.01)
    return len(killed)


def parse(line: str, groups: dict[str, Group]) -> None:
    parts = line.split()
    if len(parts) >= 5 and parts[0] == "G":
        groups[parts[1]] = Group(int(parts[2]), float(parts[3]),
                                 f"SOCKSPEC_SERVER_TOKEN={parts[4]}".encode())
    elif len(parts) >= 2 and parts[0] == "K" and parts[1] in groups:
        for pair in parts[2:]:
            pid, _, start = pair.partition(":")
            groups[parts[1]].known.add((int(pid), int(start)))
    elif len(parts) == 2 and parts[0] == "D":
        groups.pop(parts[1], None)


def sweep(harness: int) -> None:
    """Remove what the dead harness left (sockspec.cleanup). This process runs with -I -S
    (no site, so no editable-install finder): the sockspec package is loaded from the
    folder this file lives in, which is sockspec/ in an install and harness/ in a checkout."""
    import importlib.machinery
    import importlib.util

    package_dir = Path(__file__).resolve().parents[1]
    if "sockspec" not in sys.modules:
        spec = importlib.machinery.ModuleSpec("sockspec", None, is_package=True)
        spec.submodule_search_locations = [str(package_dir)]
        sys.modules["sockspec"] = importlib.util.module_from_spec(spec)
    try:
        from sockspec.cleanup import remove_leftovers
    except ImportError:
        return
    remove_leftovers(owner=harness)


def main(argv: list[str]) -> int:
    harness = int(argv[1])
    spared = {os.getpid(), harness}
    groups: dict[str, Group] = {}
    try:
        pidfd: int | None = os.pidfd_open(harness)
    except OSError:
        pidfd = None  # already gone
    pending = b""
    stdin_open = True
    eof_at: float | None = None
    while pidfd is not None:
        now = time.monotonic()
        for key, group in list(groups.items()):
            if group.deadline <= now:
                kill_group(group, spared)
                del groups[key]
        waits = [pidfd] + ([0] if stdin_open else [])
        timeout = min([g.deadline for g in groups.values()] + [now + 3600.0]) - now
        if eof_at is not None:
            timeout = min(timeout, eof_at + EXIT_WAIT_S - now)
            if timeout <= 0:
                break  # end of file, yet the harness lives on: it let us go
        readable, _, _ = select.select(waits, [], [], max(0.0, timeout))
        if pidfd in readable:
            break
        if 0 in readable:
            data = os.read(0, 65536)
            if not data:
                stdin_open, eof_at = False, time.monotonic()
                continue
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                try:
                    parse(line.decode("ascii", "replace"), groups)
                except ValueError:
                    continue
    for group in groups.values():
        kill_group(group, spared)
    sweep(harness)  # only if it no longer runs (a zombie does not): sockspec.cleanup checks
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    sys.exit(main(sys.argv))
