"""Run-to-completion programs under test (clients): start, bound, capture, judge-ready.

A client under test runs like a server under test does (ServerProcess: its own
session and process group, output drained, orphans attributed and reaped,
stopped by group with SIGTERM then SIGKILL) but nobody waits for it to accept
connections: it runs until it exits or its time limit passes, and the harness
keeps what it needs to judge it: the exit status, a digest and the first and
last bytes of its standard output, the tail of its standard error, and timings.
"""

from __future__ import annotations

import fcntl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from sockspec.errors import ClientStartError
from sockspec.process.control import LaunchSpec, ServerProcess, describe_exit
from sockspec.reference.stream_digest import StreamDigest
from sockspec.transport import Address

KEEP_FIRST_BYTES = 1024 * 1024   # kept whole: enough to name the first differing offset
KEEP_LAST_BYTES = 4096
STOP_GRACE = 1.0                 # SIGTERM -> SIGKILL for a client past its time limit
OUTPUT_SETTLE = 5.0              # after the exit, for the last buffered output to be read
EXIT_POLL_MAX = 0.01             # seconds between looks at the client's pid
# fcntl F_SETPIPE_SZ (Linux >= 2.6.35): a 1 MiB pipe (the default
# /proc/sys/fs/pipe-max-size) takes 16x fewer reads than the default 64 KiB
# when a client prints a 2 GiB body.
F_SETPIPE_SZ = 1031
PIPE_BYTES = 1024 * 1024


class CapturedOutput:
    """Everything a client reported, without keeping it: length, digest, first and last bytes.

    Fed chunk by chunk (from a drain thread or a file), so a 2 GiB body costs
    2 MiB of memory. ``head`` holds the first KEEP_FIRST_BYTES, ``tail`` the last
    KEEP_LAST_BYTES.
    """

    def __init__(self, source: str = "stdout") -> None:
        self.source = source
        self.length = 0
        self.missing = False          # output = "file" and the client never created it
        self._digest = StreamDigest()
        self._head = bytearray()
        self._tail = bytearray()
        self._lock = threading.Lock()

    def add(self, chunk: bytes | memoryview) -> None:
        with self._lock:
            self.length += len(chunk)
            self._digest.update(chunk)
            if len(self._head) < KEEP_FIRST_BYTES:
                self._head += chunk[:KEEP_FIRST_BYTES - len(self._head)]
            if len(chunk) >= KEEP_LAST_BYTES:
                self._tail[:] = chunk[-KEEP_LAST_BYTES:]
            else:
                self._tail += chunk
                del self._tail[:-KEEP_LAST_BYTES]

    @property
    def digest(self) -> str:
        with self._lock:
            return self._digest.hexdigest()

    @property
    def head(self) -> bytes:
        with self._lock:
            return bytes(self._head)

    @property
    def tail(self) -> bytes:
        with self._lock:
            return bytes(self._tail)

    @property
    def complete_in_head(self) -> bool:
        """True when ``head`` is the whole output."""
        return self.length <= KEEP_FIRST_BYTES

    def describe(self) -> str:
        if self.missing:
            return f"no {self.source} (the client never created it)"
        return f"{self.length} bytes on {self.source} ({self.digest})"

    @classmethod
    def of_file(cls, path: Path) -> CapturedOutput:
        """Read a client's output file in 1 MiB pieces (never whole)."""
        captured = cls(source=f"output file {path.name}")
        buffer = bytearray(1024 * 1024)
        view = memoryview(buffer)
        try:
            with open(path, "rb", buffering=0) as source:
                while count := source.readinto(buffer):
                    captured.add(view[:count])
        except FileNotFoundError:
            captured.missing = True
        return captured


@dataclass
class ClientRun:
    """One finished (or stopped) run of a client under test."""

    argv: list[str]
    exit_status: int | None          # Popen style: -N = killed by signal N; None: never reaped
    stdout: CapturedOutput
    stderr_tail: str
    started_at: float                # time.monotonic() just before the process started
    ended_at: float                  # when its exit was seen, or when the harness stopped it
    time_limit: float
    timed_out: bool                  # still running at its time limit: stopped by the harness
    stop_problems: list[str] = field(default_factory=list)
    output: CapturedOutput | None = None  # what it reported: stdout, or its output file

    @property
    def elapsed_s(self) -> float:
        return self.ended_at - self.started_at

    @property
    def reported(self) -> CapturedOutput:
        return self.output if self.output is not None else self.stdout

    def describe_exit(self) -> str:
        if self.timed_out:
            return (f"still running after its time limit of {self.time_limit:g} s: stopped by "
                    f"the harness")
        if self.exit_status is None:
            return "exit status unknown (reaped elsewhere)"
        return f"{describe_exit(self.exit_status)} after {self.elapsed_s:.3f} s"

    def stderr_lines(self, count: int = 3) -> str:
        lines = [line.strip() for line in self.stderr_tail.splitlines() if line.strip()]
        return " | ".join(lines[-count:])[-400:] or "(empty)"


class ClientProcess(ServerProcess):
    """ServerProcess without readiness or a listener: it runs until it exits."""

    @classmethod
    def launch(cls, spec: LaunchSpec, *, log_dir: Path, lifetime: float, stdin: BinaryIO | int,
               stdout: CapturedOutput) -> ClientProcess:
        process = cls._spawn(spec, log_dir=log_dir, lifetime=lifetime, stdin=stdin,
                             stdout_observer=stdout.add, start_error=ClientStartError)
        try:
            fcntl.fcntl(process._popen.stdout.fileno(), F_SETPIPE_SZ, PIPE_BYTES)
        except (OSError, ValueError):
            pass  # an older kernel or a lower pipe-max-size: only slower
        return process

    def wait_for_exit(self, deadline: float) -> bool:
        """Wait (bounded) until the client's own process exits; True if it did."""
        delay = 0.001
        while not self._leader_exited():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, EXIT_POLL_MAX)
        return True

    def settle_output(self, deadline: float) -> None:
        """Let the drain read what the client wrote just before exiting."""
        self._stdout.finish(deadline)

    def _release_address(self) -> bool:
        return False  # a client holds no listener; the address is the harness's own server


def run_client(
    argv: list[str],
    *,
    cwd: str,
    time_limit: float,
    log_dir: Path,
    name: str,
    address: Address,
    stdin_path: Path | None = None,
    env: dict[str, str] | None = None,
) -> ClientRun:
    """Run ``argv`` to completion in its own process group, stopped at ``time_limit`` s.

    ``address`` is what the client was told to reach (for logs). Raises
    ClientStartError if the program cannot be started at all.
    """
    stdout = CapturedOutput()
    spec = LaunchSpec(argv=list(argv), cwd=cwd, address=address, name=name, env=env)
    stdin: BinaryIO | int = subprocess.DEVNULL
    if stdin_path is not None:
        stdin = open(stdin_path, "rb")  # noqa: SIM115 - closed below, once the child has it
    started = time.monotonic()
    try:
        process = ClientProcess.launch(spec, log_dir=log_dir, lifetime=time_limit + 30.0,
                                       stdin=stdin, stdout=stdout)
    finally:
        if stdin_path is not None:
            stdin.close()
    try:
        exited = process.wait_for_exit(started + time_limit)
        ended = time.monotonic()
        if exited:
            process.settle_output(time.monotonic() + OUTPUT_SETTLE)
    finally:
        report = process.stop(STOP_GRACE)
    return ClientRun(
        argv=list(argv),
        exit_status=report.exit_status,
        stdout=stdout,
        stderr_tail=process.stderr_tail(),
        started_at=started,
        ended_at=ended,
        time_limit=time_limit,
        timed_out=not exited,
        # Past its time limit it was SIGTERMed on purpose; only leftovers are news then.
        stop_problems=report.problems() if exited else
        [p for p in report.problems() if "SIGTERM" not in p],
    )
