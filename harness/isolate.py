"""--isolate: each server target in a network namespace of its own, with only loopback.

A server under test may be untrusted code (a class's submissions) or simply do
things nobody asked for: resolve names, look up the client's ident, phone
home. Under ``--isolate`` every server target gets a network namespace
(``ip netns add sockspec-<pid>-iso<N>``, registered with sockspec.cleanup so
it is deleted at exit at the latest, or by ``sockspec clean``) holding one
interface, ``lo``, up: 127.0.0.0/8 and ::1, no other address, no route. A
connect() to anything else fails at once with ENETUNREACH and no packet
leaves the namespace. Targets never share a namespace, so their ports cannot
collide either.

The harness reaches the server from inside: the thread that drives a
scenario (pytest's main thread) joins the target's namespace with setns()
while the server fixture is set up, the scenario runs and the fixture is torn
down, and goes back afterwards. Whatever that thread creates meanwhile is in
the namespace: sockets, the server's process (forked from it), threads it
starts, load-generator processes, the packet capture on ``lo``.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from sockspec.cleanup import forget_namespace, namespace_name, register_namespace
from sockspec.errors import SockspecError
from sockspec.iproute import NAMED_NETNS_DIR, run_ip

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class IsolationError(SockspecError):
    """A namespace for --isolate could not be made, entered or deleted."""


def unavailable_reason() -> str | None:
    """Why --isolate cannot work here, or None."""
    if os.geteuid() != 0:
        return "--isolate needs root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)"
    if shutil.which("ip") is None:
        return "--isolate needs the `ip` command (Debian package iproute2)"
    if not hasattr(_libc, "setns"):
        return "--isolate needs setns() in the C library"
    if not os.path.exists("/proc/self/ns/net"):
        return "--isolate needs network namespaces (this kernel has none)"
    return None


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise IsolationError(f"setns into {what}: {os.strerror(error)}")


class Isolation:
    """The namespaces of one harness process, one per server target, made on first use."""

    def __init__(self) -> None:
        self._namespaces: dict[str, str] = {}
        self._lock = threading.Lock()

    def namespace_for(self, target_name: str) -> str:
        with self._lock:
            name = self._namespaces.get(target_name)
            if name is not None:
                return name
            name = namespace_name(f"iso{len(self._namespaces)}")
            register_namespace(name)  # deleted at exit at the latest (sockspec.cleanup)
            try:
                run_ip("netns", "add", name, error=IsolationError)
                run_ip("-n", name, "link", "set", "lo", "up", error=IsolationError)
            except BaseException:
                _delete(name)
                raise
            self._namespaces[target_name] = name
            return name

    @contextmanager
    def entered(self, target_name: str) -> Iterator[str]:
        """The calling thread runs in the target's namespace inside the block."""
        name = self.namespace_for(target_name)
        back = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            there = os.open(os.path.join(NAMED_NETNS_DIR, name), os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(there, name)
            finally:
                os.close(there)
            try:
                yield name
            finally:
                _setns(back, "the harness's own network namespace")
        finally:
            os.close(back)

    def namespaces(self) -> dict[str, str]:
        with self._lock:
            return dict(self._namespaces)

    def close(self) -> list[str]:
        """Delete every namespace (stop the servers inside first); return those that failed."""
        with self._lock:
            names, self._namespaces = list(self._namespaces.values()), {}
        return [name for name in names if not _delete(name)]


def _delete(name: str) -> bool:
    try:
        run_ip("netns", "del", name, error=IsolationError)
    except IsolationError:
        if os.path.exists(os.path.join(NAMED_NETNS_DIR, name)):
            return False
    forget_namespace(name)
    return True


class IsolationPlugin:
    """Runs each server item (setup, call, teardown) inside its target's namespace."""

    def __init__(self, isolation: Isolation) -> None:
        self.isolation = isolation

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None):
        callspec = getattr(item, "callspec", None)
        case = callspec.params.get("server") if callspec is not None else None
        target = getattr(case, "target", None)
        if target is None or not target.managed:
            yield
            return
        with self.isolation.entered(target.name):
            yield
