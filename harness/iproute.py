"""Running iproute2's `ip` for the network namespaces the harness creates itself,
and telling whether the calling thread runs inside one."""

from __future__ import annotations

import os
import subprocess

IP_COMMAND_TIMEOUT_S = 10.0


def run_ip(*args: str, error: type[Exception]) -> None:
    """`ip ARGS`, bounded in time; a failure raises ``error`` with ip's last line."""
    try:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True,
                       timeout=IP_COMMAND_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout or "").strip().splitlines()
        raise error(f"ip {' '.join(args)}: {detail[-1] if detail else exc}") from None
    except subprocess.TimeoutExpired:
        raise error(f"ip {' '.join(args)} took more than {IP_COMMAND_TIMEOUT_S:g} s") from None


NAMED_NETNS_DIR = "/run/netns"  # where `ip netns add NAME` bind-mounts each namespace


def in_private_network_namespace() -> bool:
    """True when the calling thread is in a named network namespace (made with `ip netns
    add`, as the labs do), as `ip netns identify` decides: its ns/net is one of
    /run/netns/*. The initial namespace is never named there. Per thread, because
    the wire lab joins a namespace with setns() in one thread only.
    """
    try:
        mine = os.stat("/proc/thread-self/ns/net")
        with os.scandir(NAMED_NETNS_DIR) as entries:
            names = [entry.path for entry in entries]
    except OSError:
        return False
    for path in names:
        try:
            found = os.stat(path)
        except OSError:
            continue  # another lab's namespace, deleted meanwhile
        if (found.st_dev, found.st_ino) == (mine.st_dev, mine.st_ino):
            return True
    return False
