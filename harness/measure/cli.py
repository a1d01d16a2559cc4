"""``python -m sockspec.measure``: the measurements on their own, against any loopback server.

    python -m sockspec.measure latency tcp:127.0.0.1:8080 [--size 64] [--count 100000]
        [--warmup 5000] [--rate 2000] [--cpus 1] [--generators 2] [--json out.json]
    python -m sockspec.measure connrate tcp:127.0.0.1:8080 [--seconds 5] [--generators 2]
    python -m sockspec.measure concurrent tcp:127.0.0.1:8080 [ADDRESS ...] -n 50000
    python -m sockspec.measure throughput tcp:127.0.0.1:8080 [--bytes 1073741824] [--no-verify]

Prints one summary line and the metrics (the results-JSON names); ``--json``
writes them too. Impossible requests are refused before any connection with
one line naming the limit (exit 2); failed connections or echoes exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sockspec.errors import SockspecError, UsageError
from sockspec.measure.concurrent import hold_concurrent
from sockspec.measure.connrate import ConnRateRequest, run_connection_rate
from sockspec.measure.coordinator import Coordinator, merge_latency, ping_pong_params
from sockspec.measure.histogram import merge_encoded
from sockspec.measure.latency import PingPongRequest, run_ping_pong
from sockspec.measure.native_loop import ENGINES, resolve_engine
from sockspec.measure.throughput import ThroughputRequest, run_echo_throughput


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m sockspec.measure", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    latency = commands.add_parser("latency", help="ping-pong latency (closed or open loop)")
    latency.add_argument("address")
    latency.add_argument("--size", type=int, default=64)
    latency.add_argument("--count", type=int, default=100_000)
    latency.add_argument("--warmup", type=int, default=5_000)
    latency.add_argument("--rate", type=float, default=None,
                         help="open loop at this many requests/s (latency from intended send)")
    latency.add_argument("--cpus", default=None, help="pin the generator(s), e.g. 1 or 0,1")
    latency.add_argument("--generators", type=int, default=1)
    latency.add_argument("--engine", choices=ENGINES, default="auto",
                         help="the loop compiled with numba (native), in CPython (python), "
                              "or native when installed (auto, the default)")
    connrate = commands.add_parser("connrate", help="connect / 1-byte echo / close rate")
    connrate.add_argument("address")
    connrate.add_argument("--seconds", type=float, default=5.0)
    connrate.add_argument("--generators", type=int, default=1)
    connrate.add_argument("--engine", choices=ENGINES, default="auto",
                          help="the loop compiled with numba (native), in CPython (python), "
                               "or native when installed (auto, the default)")
    concurrent = commands.add_parser("concurrent", help="hold N verified connections at once")
    concurrent.add_argument("addresses", nargs="+")
    concurrent.add_argument("-n", "--connections", type=int, required=True)
    concurrent.add_argument("--inflight", type=int, default=1000)
    concurrent.add_argument("--timeout", type=float, default=60.0)
    concurrent.add_argument("--generators", type=int, default=None)
    throughput = commands.add_parser("throughput", help="bulk echo, both ways, verified")
    throughput.add_argument("address")
    throughput.add_argument("--bytes", type=int, default=1 << 30)
    throughput.add_argument("--no-verify", action="store_true")
    for sub in (latency, connrate, concurrent, throughput):
        sub.add_argument("--json", type=Path, default=None, help="write the metrics here")
    return parser


def _cpus(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"--cpus wants numbers like 1 or 0,1, not {text!r}") from None


def _generators(count: int) -> int:
    if count < 1:
        raise UsageError(f"--generators must be at least 1, not {count}")
    return count


def command_latency(args: argparse.Namespace) -> tuple[str, dict, bool]:
    request = PingPongRequest(size=args.size, count=args.count, warmup=args.warmup,
                              rate_per_s=args.rate, cpus=_cpus(args.cpus), engine=args.engine)
    request.validate()
    if _generators(args.generators) == 1:
        result = run_ping_pong(args.address, request)
        histogram, ok, text = result.histogram, result.ok, result.describe()
    else:
        with Coordinator(["popen"] * args.generators) as coordinator:
            merged = merge_latency(coordinator.run(
                "ping_pong", [ping_pong_params(args.address, request)] * args.generators,
                timeout_s=600))
        histogram, ok = merged.histogram, merged.ok
        text = f"{merged.completed} of {merged.requested} round trips over {args.generators} " \
               f"generators ({request.resolved_engine()} engine)" \
               + (f"; failures {merged.failures}" if merged.failures else "")
    summary = histogram.summary()
    return f"{text}; {summary.describe()}", summary.metrics(), ok


def command_connrate(args: argparse.Namespace) -> tuple[str, dict, bool]:
    request = ConnRateRequest(duration_s=args.seconds, engine=args.engine)
    request.validate()
    if _generators(args.generators) == 1:
        result = run_connection_rate(args.address, request)
        metrics = {"conn_per_s": result.conn_per_s, **result.histogram.summary().metrics()}
        return result.describe(), metrics, not result.failures
    params = {"address": args.address, "duration_s": args.seconds, "engine": args.engine}
    with Coordinator(["popen"] * args.generators) as coordinator:
        outcome = coordinator.run("conn_rate", [dict(params) for _ in range(args.generators)],
                                  timeout_s=args.seconds + 120)
    succeeded = sum(r["succeeded"] for r in outcome.results)
    failures: dict[str, int] = {}
    for r in outcome.results:
        for name, n in r["failures"].items():
            failures[name] = failures.get(name, 0) + n
    rate = succeeded / max(r["elapsed_s"] for r in outcome.results)
    histogram = merge_encoded(r["histogram"] for r in outcome.results)
    text = f"{succeeded} connections over {args.generators} generators ({rate:.0f}/s, " \
           f"{resolve_engine(request.engine)} engine)"
    text += f"; failures {failures}" if failures else ""
    return text, {"conn_per_s": rate, **histogram.summary().metrics()}, not failures


def command_concurrent(args: argparse.Namespace) -> tuple[str, dict, bool]:
    result = hold_concurrent(args.addresses, args.connections, inflight=args.inflight,
                             timeout_s=args.timeout, generators=args.generators)
    metrics = {"concurrent_connections": result.hold.verified, "setup_s": result.hold.setup_s}
    return result.describe(), metrics, result.ok


def command_throughput(args: argparse.Namespace) -> tuple[str, dict, bool]:
    result = run_echo_throughput(args.address, ThroughputRequest(total_bytes=args.bytes,
                                                                 verify=not args.no_verify))
    ok = result.verified if not args.no_verify else result.complete
    return result.describe(), {"throughput_gbps": result.gbit_per_s}, ok


COMMANDS = {"latency": command_latency, "connrate": command_connrate,
            "concurrent": command_concurrent, "throughput": command_throughput}


def main(argv: list[str] | None = None) -> int:
    from sockspec.reports.outputs import OutputError, check_outputs, write_output

    try:
        args = build_parser().parse_args(argv)
        # Like sockspec run's outputs: checked before measuring, written atomically, and
        # never a directory, a device or a socket replaced.
        check_outputs([("--json", args.json)])
        text, metrics, ok = COMMANDS[args.command](args)
    except (SockspecError, OutputError) as exc:
        print(f"sockspec measure: {exc}", file=sys.stderr)
        return exc.exit_status
    print(text)
    for name, value in metrics.items():
        print(f"  {name} = {value:.6g}")
    if args.json:
        try:
            write_output(args.json, json.dumps({"command": args.command, "ok": ok,
                                                "metrics": metrics}, indent=2) + "\n",
                         "--json")
        except OutputError as exc:
            print(f"sockspec measure: {exc}", file=sys.stderr)
            return exc.exit_status
    return 0 if ok else 1
