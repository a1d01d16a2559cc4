"""What the harness leaves on the machine, and how it is always removed.

Every temporary directory (server workspaces, client workspaces: document
roots, 2 GiB sparse files, Unix socket files, logs) and every network
namespace the harness creates carries the pid of the harness process that made
it: ``/tmp/sockspec-<pid>-XXXXXXXX`` and ``/run/netns/sockspec-<pid>-...``.

- While the harness lives, each is registered here and removed by whoever made
  it (a ``finally``); whatever is still registered when the interpreter exits
  (an interrupt, SIGTERM or SIGHUP unwinding the run) is removed by an atexit
  handler, after the programs under test have been stopped.
- When the harness is killed outright (SIGKILL), its watchdog process
  (sockspec.process.lifeline) kills the programs under test and removes that
  pid's directories and namespaces.
- Whatever is left anyway (the watchdog was killed too) is removed by the next
  run, or on demand by ``sockspec clean``: only names of this exact form, only
  when their pid is no longer running, only directories owned by us; nothing
  else is ever touched.

Only the standard library is imported here: the watchdog process imports this
module without the rest of the harness.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import stat
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

PREFIX = "sockspec"
TEMP_DIR = "/tmp"
NAMESPACE_DIR = "/run/netns"   # where `ip netns add NAME` bind-mounts each namespace
IP_TIMEOUT_S = 10.0
# sockspec-<pid>-<anything>: the pid is the owner's; "sockspec-test-..." never matches.
OWNED_NAME = re.compile(rf"^{PREFIX}-(\d+)-[A-Za-z0-9_.-]+$")

_lock = threading.Lock()
_workdirs: set[str] = set()
_namespaces: set[str] = set()


def owned_prefix(pid: int | None = None) -> str:
    return f"{PREFIX}-{os.getpid() if pid is None else pid}-"


def make_workdir() -> Path:
    """A fresh private directory in /tmp named for this process; removed at exit at the latest."""
    _watch_this_process()
    path = tempfile.mkdtemp(prefix=owned_prefix(), dir=TEMP_DIR)
    with _lock:
        _workdirs.add(path)
    return Path(path)


def remove_workdir(path: str | os.PathLike[str]) -> None:
    shutil.rmtree(path, ignore_errors=True)
    with _lock:
        _workdirs.discard(str(path))


def namespace_name(tag: str) -> str:
    """The name of a network namespace this process creates: sockspec-<pid>-<tag>."""
    return f"{owned_prefix()}{tag}"


def register_namespace(name: str) -> None:
    """Call before `ip netns add name`; deleted at exit at the latest."""
    _watch_this_process()
    with _lock:
        _namespaces.add(name)


def forget_namespace(name: str) -> None:
    with _lock:
        _namespaces.discard(name)


def registered() -> tuple[list[str], list[str]]:
    """(workdirs, namespaces) of this process not removed yet."""
    with _lock:
        return sorted(_workdirs), sorted(_namespaces)


def remove_registered() -> list[str]:
    """Stop the programs under test still running, then remove what this process made."""
    from sockspec.process import stop_all  # late: the watchdog must not import it

    stop_all()
    removed = []
    workdirs, namespaces = registered()
    for name in namespaces:
        if delete_namespace(name):
            removed.append(f"network namespace {name}")
        forget_namespace(name)
    for path in workdirs:
        remove_workdir(path)
        removed.append(f"directory {path}")
    return removed


def _at_exit() -> None:
    if os.getpid() == _registering_pid and any(registered()):  # not in a forked child
        remove_registered()


_registering_pid = os.getpid()
# Registered after sockspec.process.control's stop_all (atexit runs last-in first),
# and remove_registered() stops servers itself before deleting their namespaces.
atexit.register(_at_exit)


def _watch_this_process() -> None:
    from sockspec.process.lifeline import ensure_watchdog

    ensure_watchdog()


# -- leftovers of processes that are gone ----------------------------------------------


@dataclass(frozen=True)
class Leftover:
    kind: str     # "directory" or "network namespace"
    name: str     # the path, or the namespace's name
    owner: int    # the pid in its name

    def describe(self) -> str:
        return f"{self.kind} {self.name} (harness pid {self.owner}, no longer running)"


def pid_running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie, exited but not reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().decode("ascii", "replace").rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def find_leftovers(owner: int | None = None, *, temp_dir: str = TEMP_DIR,
                   namespace_dir: str = NAMESPACE_DIR) -> list[Leftover]:
    """Directories and namespaces named for a harness pid that is not running.

    ``owner``: only that pid's. A directory counts only if it is a real directory
    (not a symlink) owned by our user.
    """
    found = []
    for kind, directory in (("network namespace", namespace_dir), ("directory", temp_dir)):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in sorted(names):
            match = OWNED_NAME.match(name)
            if not match:
                continue
            pid = int(match.group(1))
            if (owner is not None and pid != owner) or pid_running(pid):
                continue
            path = os.path.join(directory, name)
            if kind == "directory":
                try:
                    info = os.lstat(path)
                except OSError:
                    continue
                if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
                    continue
                found.append(Leftover(kind, path, pid))
            else:
                found.append(Leftover(kind, name, pid))
    return found


def delete_namespace(name: str) -> bool:
    """`ip netns del name`; True when it is gone."""
    if not os.path.exists(os.path.join(NAMESPACE_DIR, name)):
        return False
    try:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False,
                       timeout=IP_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return not os.path.exists(os.path.join(NAMESPACE_DIR, name))


def remove_leftovers(owner: int | None = None, *, temp_dir: str = TEMP_DIR,
                     namespace_dir: str = NAMESPACE_DIR) -> list[str]:
    """Remove what find_leftovers() finds (namespaces first); describe each one removed."""
    removed = []
    for leftover in find_leftovers(owner, temp_dir=temp_dir, namespace_dir=namespace_dir):
        if leftover.kind == "network namespace":
            if delete_namespace(leftover.name):
                removed.append(leftover.describe())
        else:
            shutil.rmtree(leftover.name, ignore_errors=True)
            if not os.path.lexists(leftover.name):
                removed.append(leftover.describe())
    return removed
