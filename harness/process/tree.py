"""Which processes belong to a server under test, and how to signal them safely.

A server runs in its own session and process group (``start_new_session``), so one
killpg() reaches it and whatever it forked inside the group. Processes that leave
the group (setsid(), double fork) are still attributed to the server, three ways,
because none suffices alone:

* ancestry: /proc/PID/stat PPid links from the server pid, re-walked by a watcher
  thread every WATCH_INTERVAL and remembered as (pid, starttime) identities, since
  an orphan loses its ancestry when its parent dies;
* the process group: pgid == server pid, trusted only while the server's own pid is
  unreaped (Linux does not reuse a pid whose task is still a zombie);
* an environment token: every server gets SOCKSPEC_SERVER_TOKEN=<random>, inherited
  by everything it forks or execs; an orphan whose parent died before any snapshot
  saw it is recognised by it in /proc/PID/environ;
* what an orphan holds: a daemon started with ``setsid -f env -i ...`` has lost the
  token, but an orphan reparented to the harness that holds the server's output
  pipes or listens on its address is the server's.

The harness is a child subreaper (PR_SET_CHILD_SUBREAPER, Linux >= 3.4): orphans
are reparented to it, not to init, so they stay findable and their zombies are
ours to reap. A process that cannot be attributed is never signalled or reaped.
"""


from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
TOKEN_ENV = "SOCKSPEC_SERVER_TOKEN"

Identity = tuple[int, int]  # (pid, starttime): a pid alone may be reused


@dataclass(frozen=True)
class ProcInfo:
    """The fields of /proc/PID/stat (proc(5)) that attribution needs."""

    pid: int
    ppid: int
    pgid: int
    state: str       # R S D T Z X ...; Z = zombie, exited but not reaped
    starttime: int   # field 22, clock ticks after boot
    session: int = -1  # field 6

    @property
    def identity(self) -> Identity:
        return (self.pid, self.starttime)

    @property
    def live(self) -> bool:
        return self.state not in ("Z", "X")



def become_subreaper() -> None:
    """prctl(PR_SET_CHILD_SUBREAPER, 1): orphaned descendants are reparented to us."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, ctypes.c_ulong(1), ctypes.c_ulong(0),
                  ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(code)}")



def read_process_table() -> dict[int, ProcInfo]:
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (info := read_stat(int(name))) is not None:
            table[info.pid] = info
    return table


def read_stat(pid: int) -> ProcInfo | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # comm (field 2) is in parentheses and may itself contain spaces and ')'.
    rest = text.rpartition(")")[2].split()
    return ProcInfo(pid, int(rest[1]), int(rest[2]), rest[0], int(rest[19]), int(rest[3]))


def attribute_processes(table: Mapping[int, ProcInfo], *, leader: Identity, pgid: int | None,
                        known: Iterable[Identity], harness_pid: int,
                        has_token: Callable[[ProcInfo], bool],
                        claims: Callable[[ProcInfo], bool] | None = None,
                        ) -> dict[int, ProcInfo]:
    """Which processes in ``table`` belong to one server (pure; see module docstring).

    Seeds are the leader, members of ``pgid`` (None when it can no longer be trusted)
    and identities seen before; then their descendants; then any descendant of the
    harness (where orphans land) that carries the server's token, and any orphan
    reparented to the harness that ``claims`` recognises (one holding the server's
    output pipes or its listener: ``env -i`` loses the token, not those), with
    their own descendants. The harness and its ancestors are never included.
    """
    children: dict[int, list[int]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info.pid)
    # The harness and its ancestors are walls: never seeds, never walked through.
    walls = {harness_pid}
    pid = harness_pid
    while pid in table and table[pid].ppid not in walls | {0}:
        pid = table[pid].ppid
        walls.add(pid)
    known = set(known)
    seeds = [info.pid for info in table.values()
             if info.identity == leader or info.identity in known
             or (pgid is not None and info.pgid == pgid)]
    found = _with_descendants(children, seeds, walls)
    strays = _with_descendants(children, children.get(harness_pid, ()), walls) - found
    claimed = [pid for pid in strays if has_token(table[pid])]
    if claims is not None:
        claimed += [pid for pid in strays
                    if table[pid].ppid == harness_pid and pid not in claimed
                    and claims(table[pid])]
    found |= _with_descendants(children, claimed, walls)
    return {pid: table[pid] for pid in found if pid in table}


def _with_descendants(children: Mapping[int, list[int]], roots: Iterable[int],
                      walls: set[int]) -> set[int]:
    found: set[int] = set()
    stack = [pid for pid in roots if pid not in walls]
    while stack:
        pid = stack.pop()
        if pid not in found:
            found.add(pid)
            stack.extend(child for child in children.get(pid, ()) if child not in walls)
    return found


def send_signal(info: ProcInfo, sig: int) -> None:
    """Signal one attributed process, immune to pid reuse (pidfd, Linux >= 5.3)."""
    try:
        pidfd = os.pidfd_open(info.pid)
    except OSError:
        return
    try:
        # Once the pidfd is open it names this very process, so the starttime check
        # cannot be defeated by the pid being recycled in between.
        current = read_stat(info.pid)
        if current is not None and current.starttime == info.starttime:
            signal.pidfd_send_signal(pidfd, sig)
    except OSError:
        pass
    finally:
        os.close(pidfd)
