"""sockspec: a network conformance harness on pytest.

``import sockspec`` is the public API for scenario authors (README, "Writing your
own scenarios"): the scenario decorators and ``Family``, the verdict helpers,
the transport primitives, the drivers, the measurement engines and the
reference client's helpers. Every name in ``__all__`` is stable under the same
promise as the targets TOML and the results JSON: names are only added, never
renamed or removed, and their documented arguments keep their meaning.

Everything else (``sockspec.plugin``, ``sockspec.targets``, ``sockspec.under_test``,
``sockspec.process``, ``sockspec.packets``, ``sockspec.reports``, the CLI, ...) is
internal and may change in any release.

Names load on first use (module ``__getattr__``), so that importing sockspec,
which pytest does for the plugin's entry point in every session, stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {}


def _export(module: str, *names: str) -> None:
    for name in names:
        _EXPORTS[name] = module


# Declaring scenarios and families
_export("sockspec.catalogue", "Family", "Chart", "ScenarioSpec", "scenario", "client_scenario",
        "DEFAULT_TIME_LIMIT", "Metrics", "DECLARED")
# Verdicts
_export("sockspec.verdict", "ScenarioFailed", "expect", "fail", "expect_same_bytes",
        "first_difference", "excerpt", "MUST", "SHOULD", "INFO")
_export("sockspec.verdict.client", "ExpectedOutput", "expect_success", "expect_failure_reported",
        "expect_finished_by", "expect_message_on_failure", "expect_declared_success",
        "expect_declared_failure", "expect_requests_declared")
# Errors a scenario raises or catches
_export("sockspec.errors", "SockspecError", "PeerError", "ServerStartError", "HarnessError")
# The harness's own file work (a failure there is the harness's trouble: error, no hint).
# (Its context manager shares its module's name, sockspec.preparing, so it cannot be a
# name of the package: use sockspec.preparing.preparing.)
_export("sockspec.preparing", "write_file", "write_sparse_file")
# Transport primitives
_export("sockspec.transport", "Address", "TcpAddress", "UnixAddress", "StreamEnd",
        "UNIX_PATH_MAX", "abort", "connect", "describe_os_error", "half_close",
        "read_until_end", "recv_exactly", "send_all")
# Drivers
_export("sockspec.drivers.http", "counting_bytes", "read_response_start", "send_get",
        "stream_body")
_export("sockspec.drivers.load", "Probe", "close_without_sending", "connect_burst",
        "echo_then_close", "echo_then_reset", "fill_until_blocked", "get_then_close",
        "probe_service", "reset_mid_request", "run_in_sequence", "settle_count",
        "tcp_states_on_port", "unfinished_get_request", "wait_until_still")
_export("sockspec.drivers.streams", "LatencySummary", "PacedSink", "best_sample",
        "echo_many_at_once", "limit_receive_buffer", "parse_small_response", "printable_payload", "read_in_bursts",
        "samples_words", "send_in_pieces", "send_with_fin", "start_stalled_download")
_export("sockspec.drivers.wire", "wire_session")
# Declared protocols ([[protocol]]): the generic correctness families' client side
_export("sockspec.drivers.declared", "NotPrepared", "PacedSocket", "Ready", "Tried",
        "binary_payload", "close_at_once", "exchange_then_leave", "half_request_then_reset",
        "keeps_connection", "large_values", "leave_while_reply_owed", "new_conversation",
        "ready_for", "reset_at_once", "run_exchanges", "send_split", "try_all",
        "try_exchange", "wire_of")
# ... and the measurement and wire-level families' (proto_measure, proto_wire)
_export("sockspec.drivers.declared", "declared_connection_rate", "declared_ping_pong",
        "declared_throughput", "describe_exchange", "exchange_then_close",
        "fill_with_requests", "fixed_exchange", "hold_declared", "judge_wire_reply",
        "reply_arrived", "wire_request")
# Declared protocols themselves: the declaration (README, "Testing your own protocol")
# and a client's side of its exchanges over a socket
_export("sockspec.protocol.declared", "Exchange", "Framing", "Protocol", "ProtocolError",
        "load_protocol_file", "parse_protocols")
_export("sockspec.protocol.conversation", "Conversation", "FrameReader", "Outcome",
        "sequence_values")
_export("sockspec.drivers.owed", "leave_while_echo_owed")
_export("sockspec.drivers.peer", "PeerSocket", "ReadAlone", "peer_socket", "peer_socket_at",
        "read_everything", "unix_peer_inode")
_export("sockspec.drivers.closing", "connect_with_receive_buffer", "held_server",
        "settle_unix_end", "wait_until_echo_written")
_export("sockspec.drivers.resources", "Busy", "close_all", "cpu_seconds", "lower_fd_limit",
        "open_idle", "runnable", "sample_busy",
        "tcp_states_of_server")
# The reference client's helpers
_export("sockspec.reference.client", "echo_roundtrip", "fetch", "build_get_request",
        "host_header", "ping_pong")
_export("sockspec.reference.client_streams", "BackgroundSender")
_export("sockspec.reference.stream_digest", "bytes_digest")
# Playing the server for client scenarios
_export("sockspec.adversary", "Dribble", "Ending", "FileBody", "Listening")
_export("sockspec.adversary.payloads", "every_byte_value", "printable_bytes")
# Measurement engines and their sizes
_export("sockspec.measure.settings", "Size", "check_ping_pong_sizes", "check_connection_count",
        "check_server_fd_room", "process_fd_soft_limit")
_export("sockspec.measure.plan", "ImpossibleLoad")
# Figures a measurement family declares for thresholds (Family(measures=...))
_export("sockspec.thresholds", "Measure")
_export("sockspec.measure.concurrent", "hold_concurrent")
_export("sockspec.measure.connrate", "ConnRateRequest", "run_connection_rate")
_export("sockspec.measure.histogram", "NS_PER_MS")
_export("sockspec.measure.latency", "PingPongRequest", "run_ping_pong")
_export("sockspec.measure.throughput", "ThroughputRequest", "run_download_throughput",
        "run_echo_throughput", "write_pattern_file")
_export("sockspec.process", "describe_exit")

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
    if name == "__version__":
        from importlib.metadata import version

        value = version("sockspec")
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sockspec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
