"""The C baselines of shared/bench and sockperf: build them, start them, read their numbers.

The C sources are copied into a temporary directory and compiled there with
gcc at run time (never into the project). Servers run under
sockspec.process.ServerProcess (own process group, lifetime watchdog, stopped
by group); clients run with a timeout. Every program prints ``key=value``
fields on one line, which ``fields`` parses.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sockspec.errors import SockspecError
from sockspec.measure.latency import Exchange, message_for
from sockspec.process import LaunchSpec, ServerProcess
from sockspec.transport import TcpAddress

PROGRAMS = ("echo_epoll", "pingpong", "crr", "holdconns", "sf_server")
CFLAGS = ("-O2", "-Wall", "-Wextra", "-std=gnu11")
CLIENT_TIMEOUT_S = 300.0
SERVER_LIFETIME_S = 1800.0
SOCKPERF_HEADER = struct.Struct(">QHI")


class BenchError(SockspecError):
    """The benchmark cannot run here (no gcc, no sources, a baseline failed)."""

    exit_status = 2


def default_source_dir() -> Path:
    """shared/bench next to the checkout (``../shared/bench`` from the project root).

    The benchmark is a development tool: from an installed sockspec there is no
    checkout, and ``--baselines DIR`` names the C sources."""
    return Path(__file__).resolve().parents[4] / "shared" / "bench"


def build(source_dir: Path, build_dir: Path) -> dict[str, Path]:
    """Copy the C sources to ``build_dir`` and compile PROGRAMS; name -> binary."""
    if not (source_dir / "common.h").exists():
        raise BenchError(f"no C baseline sources in {source_dir} (expected common.h, *.c); "
                         "outside a checkout, pass --baselines DIR")
    if shutil.which("gcc") is None:
        raise BenchError("gcc is not installed: the C baselines are built at run time "
                         "(apt-get install -y gcc)")
    shutil.copy2(source_dir / "common.h", build_dir / "common.h")
    binaries = {}
    for name in PROGRAMS:
        shutil.copy2(source_dir / f"{name}.c", build_dir / f"{name}.c")
        binary = build_dir / name
        done = subprocess.run(["gcc", *CFLAGS, "-o", str(binary), str(build_dir / f"{name}.c")],
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise BenchError(f"gcc failed on {name}.c: {done.stderr.strip()[-300:]}")
        binaries[name] = binary
    return binaries


def fields(text: str) -> dict[str, str]:
    """``a=1 b=x`` -> {"a": "1", "b": "x"} (the baselines' output format)."""
    return dict(re.findall(r"([\w.]+)=([^\s]+)", text))


def run_client(argv: Sequence[str], cpu: int | None = None) -> str:
    """Run a baseline client to completion (bounded); its stdout."""
    command = [*(["taskset", "-c", str(cpu)] if cpu is not None else []), *argv]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{Path(argv[0]).name} took more than {CLIENT_TIMEOUT_S:g} s") from None
    if done.returncode != 0:
        raise BenchError(f"{Path(argv[0]).name} failed ({done.returncode}): "
                         f"{(done.stderr or done.stdout).strip()[-300:]}")
    return done.stdout


@contextmanager
def running(argv: Sequence[str], address: TcpAddress, name: str, log_dir: Path,
            cpu: int | None = None, processes: int = 1) -> Iterator[list[ServerProcess]]:
    """``processes`` copies of a server (SO_REUSEPORT ones share ``address``), optionally
    pinned to ``cpu``; all stopped by process group afterwards."""
    started: list[ServerProcess] = []
    try:
        for index in range(processes):
            server = ServerProcess.start(
                LaunchSpec(argv=list(argv), cwd=str(log_dir), address=address,
                           name=f"{name}#{index}"),
                log_dir=log_dir / f"{name}-{index}-{os.getpid()}", lifetime=SERVER_LIFETIME_S)
            started.append(server)
            if cpu is not None:
                for pid in server.group_pids():
                    os.sched_setaffinity(pid, {cpu})
        yield started
    finally:
        for server in started:
            server.stop()


def echo_epoll_argv(binaries: dict[str, Path], address: TcpAddress,
                    reuseport: bool = False) -> list[str]:
    return [str(binaries["echo_epoll"]), "-l", f"tcp:{address.hostport}", "-T", "1800",
            *(["-R"] if reuseport else [])]


def pingpong_p50_us(binaries: dict[str, Path], address: TcpAddress, size: int, count: int,
                    warmup: int, cpu: int | None) -> float:
    out = run_client([str(binaries["pingpong"]), "-c", f"tcp:{address.hostport}",
                      "-s", str(size), "-n", str(count), "-w", str(warmup)], cpu)
    return float(fields(out)["p50_us"])


def crr_conn_per_s(binaries: dict[str, Path], address: TcpAddress, seconds: float) -> float:
    out = fields(run_client([str(binaries["crr"]), "-c", f"tcp:{address.hostport}",
                             "-d", str(seconds)]))
    if int(out["errors"]):
        raise BenchError(f"crr saw {out['errors']} failed connections")
    return float(out["conn_per_s"])


def holdconns_setup_s(binaries: dict[str, Path], address: TcpAddress, total: int,
                      processes: int, sources: int) -> float:
    """Setup + echo time of ``total`` connections over ``processes`` holdconns (max of them)."""
    share = -(-total // processes)
    argv = [str(binaries["holdconns"]), "-c", f"tcp:{address.hostport}", "-N", str(share), "-e",
            "-T", "120", *(["-S", str(sources)] if sources > 1 else [])]
    clients = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True,
                                stdin=subprocess.DEVNULL) for _ in range(processes)]
    outputs = []
    try:
        for client in clients:
            outputs.append(client.communicate(timeout=CLIENT_TIMEOUT_S)[0])
    finally:
        for client in clients:
            if client.poll() is None:
                os.killpg(client.pid, 9)
                client.wait()
    results = [fields(out) for out in outputs]
    verified = sum(int(r["verified"]) for r in results)
    if verified != share * processes:
        raise BenchError(f"holdconns verified {verified} of {share * processes} connections")
    return max(float(r["total_secs"]) for r in results)


def sockperf_server_argv(address: TcpAddress) -> list[str]:
    if shutil.which("sockperf") is None:
        raise BenchError("sockperf is not installed (apt-get install -y sockperf)")
    return ["sockperf", "sr", "--tcp", "-i", address.host, "-p", str(address.port)]


def sockperf_exchange(size: int) -> Exchange:
    """A ping-pong message in sockperf's framing, and the reply its server sends.

    The header (big-endian) is a u64 sequence number, u16 flags and a u32 length;
    a client's ping has flags 3 (client | pong request) and the server answers
    with the same bytes but flags 2 (seen on the wire with sockperf 3.7). So
    sockspec and ``sockperf pp`` can be timed against the same sockperf server.
    """
    payload = message_for(size)[SOCKPERF_HEADER.size:]
    return Exchange(SOCKPERF_HEADER.pack(1, 3, size) + payload,
                    SOCKPERF_HEADER.pack(1, 2, size) + payload)


def sockperf_p50_us(address: TcpAddress, size: int, seconds: float, cpu: int | None) -> float:
    """``sockperf pp`` against a running sockperf server: p50 of the full round trip."""
    out = run_client(["sockperf", "pp", "--tcp", "-i", address.host, "-p", str(address.port),
                      "-m", str(size), "-t", str(seconds), "--full-rtt"], cpu)
    found = re.search(r"percentile 50\.000 =\s*([\d.]+)", out)
    if not found:
        raise BenchError(f"no p50 in sockperf's output: {out.strip()[-200:]}")
    return float(found.group(1))
