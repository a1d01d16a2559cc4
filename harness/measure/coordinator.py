"""Load-generator fan-out over execnet: start generators, start them together, merge.

execnet (the engine under pytest-xdist) starts one Python interpreter per
gateway spec and talks to it over a channel:

* ``popen``: a local process;
* ``popen//python=ip netns exec NS /path/to/python``: a process inside network
  namespace NS (the "multi-host" lab of sockspec.measure.netns);
* ``ssh=HOST//python=python3``: another host (execnet's own syntax; the remote
  needs this project importable at the same path or on PYTHONPATH).

Each generator runs ``serve_generator``: for every job it prepares, answers
``ready``, waits for ``go`` (sent to all generators back to back, so they start
together), runs, and sends a result made of plain data (histograms travel as
HdrHistogram histoblobs). A ``hold`` job then keeps its connections open until
the coordinator sends ``release``. Every generator arms SIGALRM with its
lifetime (default action: the process ends), so a lost coordinator never
leaves a generator running; the coordinator kills its gateways by PID on exit.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import execnet

from sockspec.errors import SockspecError
from sockspec.measure.histogram import LatencyHistogram, merge_encoded

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_LIFETIME_S = 600
READY_TIMEOUT_S = 30.0
TERMINATE_TIMEOUT_S = 5.0

BOOTSTRAP = """
import signal
import sys
if __name__ == "__channelexec__":
    config = channel.receive()
    sys.path.insert(0, config["project_root"])
    signal.alarm(int(config["lifetime_s"]))  # default SIGALRM action ends this process
    from sockspec.measure.coordinator import serve_generator
    serve_generator(channel)
"""


class GeneratorError(SockspecError):
    """A load generator failed, did not answer in time, or could not start."""


@dataclass
class JobOutcome:
    results: list[dict]
    wall_s: float            # from the first "go" to the last result


class Coordinator:
    """Drives one generator process per gateway spec: ``with Coordinator(["popen"]*3) as c``."""

    def __init__(self, specs: Sequence[str], *, lifetime_s: int = DEFAULT_LIFETIME_S) -> None:
        if not specs:
            raise GeneratorError("at least one load generator is needed")
        self.specs = list(specs)
        self.lifetime_s = lifetime_s
        self._group: execnet.Group | None = None
        self._channels: list[execnet.Channel] = []
        self._holding = False

    def __enter__(self) -> Coordinator:
        self._group = execnet.Group()
        try:
            for spec in self.specs:
                try:
                    gateway = self._group.makegateway(spec)
                except Exception as exc:  # execnet raises plain Exception subclasses
                    raise GeneratorError(f"cannot start load generator {spec!r}: {exc}") from exc
                channel = gateway.remote_exec(BOOTSTRAP)
                channel.send({"project_root": str(PROJECT_ROOT), "lifetime_s": self.lifetime_s})
                self._channels.append(channel)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def pids(self) -> list[int]:
        return [int(ch.gateway.remote_exec("channel.send(__import__('os').getpid())").receive(5))
                for ch in self._channels]

    def run(self, job: str, params: Sequence[dict], timeout_s: float) -> JobOutcome:
        """Send ``job`` with one params dict per generator; start together; collect."""
        if len(params) != len(self._channels):
            raise GeneratorError(f"{len(params)} job parameter sets for "
                                 f"{len(self._channels)} generators")
        for channel, item in zip(self._channels, params, strict=True):
            channel.send({"job": job, "params": item})
        for index, channel in enumerate(self._channels):
            self._expect(channel, index, "ready", READY_TIMEOUT_S)
        started = time.perf_counter()
        for channel in self._channels:
            channel.send("go")
        results = [self._expect(channel, index, "result", timeout_s)["result"]
                   for index, channel in enumerate(self._channels)]
        return JobOutcome(results, time.perf_counter() - started)

    def hold(self, params: Sequence[dict], timeout_s: float) -> JobOutcome:
        """Run a ``hold`` job; the connections stay open until ``release_all()``."""
        self._holding = True
        return self.run("hold", params, timeout_s)

    def release_all(self, timeout_s: float = 60.0) -> None:
        if not self._holding:
            return
        self._holding = False
        for channel in self._channels:
            channel.send("release")
        for index, channel in enumerate(self._channels):
            self._expect(channel, index, "released", timeout_s)

    def close(self) -> None:
        for channel in self._channels:
            try:
                channel.send("exit")
            except Exception:  # closed or dead already; terminate() follows
                pass
        self._channels = []
        if self._group is not None:
            self._group.terminate(timeout=TERMINATE_TIMEOUT_S)
            self._group = None

    def _expect(self, channel: execnet.Channel, index: int, key: str, timeout_s: float) -> dict:
        spec = self.specs[index]
        try:
            message = channel.receive(timeout_s)
        except channel.TimeoutError:
            raise GeneratorError(f"load generator {index} ({spec}) sent no {key!r} within "
                                 f"{timeout_s:g} s") from None
        except channel.RemoteError as exc:
            last = str(exc).strip().splitlines()[-1] if str(exc).strip() else "remote error"
            raise GeneratorError(f"load generator {index} ({spec}) failed: {last}") from None
        except EOFError:
            raise GeneratorError(f"load generator {index} ({spec}) exited") from None
        if not isinstance(message, dict) or key not in message:
            raise GeneratorError(f"load generator {index} ({spec}) sent {message!r}, "
                                 f"expected {key!r}")
        if message.get("error"):
            raise GeneratorError(f"load generator {index} ({spec}): {message['error']}")
        return message


# ------------------------------------------------------------ generator side


def serve_generator(channel) -> None:
    """The generator's loop: one job at a time until ``exit``."""
    while True:
        message = channel.receive()
        if message == "exit":
            return
        job, params = message["job"], message["params"]
        handler = JOBS.get(job)
        if handler is None:
            channel.send({"ready": False, "error": f"unknown job {job!r}"})
            continue
        handler(channel, params)


def _ready_then_go(channel) -> None:
    channel.send({"ready": os.getpid()})
    go = channel.receive()
    if go != "go":
        raise GeneratorError(f"expected 'go', got {go!r}")


def _job_hold(channel, params: dict) -> None:
    from sockspec.measure.holder import ConnectionHolder, HoldRequest

    request = HoldRequest(**{k: tuple(v) if isinstance(v, list) else v
                             for k, v in params.items()})
    holder = ConnectionHolder(request)
    try:
        _ready_then_go(channel)
        result = holder.open_all()
        channel.send({"result": result.to_wire()})
        channel.receive()  # "release"
    finally:
        holder.release()
    channel.send({"released": True})


def _job_ping_pong(channel, params: dict) -> None:
    from sockspec.measure.latency import PingPongRequest, run_ping_pong

    address = params.pop("address")
    cpus = params.pop("cpus", None)
    request = PingPongRequest(**params, cpus=tuple(cpus) if cpus else None)
    request.prepare()  # a compile here, not after "go"
    _ready_then_go(channel)
    result = run_ping_pong(address, request)
    channel.send({"result": {
        "histogram": result.histogram.encode(), "service": result.service.encode(),
        "requested": result.requested, "completed": result.completed,
        "elapsed_s": result.elapsed_s, "failures": result.failures,
        "first_failure": result.first_failure}})


def _job_conn_rate(channel, params: dict) -> None:
    from sockspec.measure.connrate import ConnRateRequest, run_connection_rate

    address = params.pop("address")
    cpus = params.pop("cpus", None)
    request = ConnRateRequest(**params, cpus=tuple(cpus) if cpus else None)
    request.prepare()  # a compile here, not after "go"
    _ready_then_go(channel)
    result = run_connection_rate(address, request)
    channel.send({"result": {
        "histogram": result.histogram.encode(), "attempted": result.attempted,
        "succeeded": result.succeeded, "elapsed_s": result.elapsed_s,
        "failures": result.failures, "first_failure": result.first_failure}})


JOBS = {"hold": _job_hold, "ping_pong": _job_ping_pong, "conn_rate": _job_conn_rate}


# ------------------------------------------------------------------ merging


@dataclass
class MergedLatency:
    histogram: LatencyHistogram
    service: LatencyHistogram
    requested: int
    completed: int
    failures: dict[str, int]
    first_failure: str | None
    wall_s: float

    @property
    def ok(self) -> bool:
        return self.completed == self.requested and not self.failures


def merge_latency(outcome: JobOutcome) -> MergedLatency:
    """One histogram of every generator's round trips (HdrHistogram add)."""
    results = outcome.results
    failures: dict[str, int] = {}
    for result in results:
        for name, count in result["failures"].items():
            failures[name] = failures.get(name, 0) + count
    return MergedLatency(
        histogram=merge_encoded(r["histogram"] for r in results),
        service=merge_encoded(r["service"] for r in results),
        requested=sum(r["requested"] for r in results),
        completed=sum(r["completed"] for r in results),
        failures=failures,
        first_failure=next((r["first_failure"] for r in results if r["first_failure"]), None),
        wall_s=outcome.wall_s,
    )


def ping_pong_params(address: str, request: object) -> dict:
    """A PingPongRequest as the plain dict a generator receives."""
    params = asdict(request)
    params["address"] = address
    return params
