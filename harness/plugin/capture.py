"""pytest plugin: capture each TCP scenario's packets and attach the facts to its result.

Options (declared in the one option table, sockspec.plugin.options):
  --sockspec-capture failures|all|off   (default failures)
  --sockspec-capture-dir DIR            (default: pcaps/ beside the results JSON or HTML)

A capture cannot be made after the fact, so in the default mode every TCP
scenario is captured while it runs (when this process has CAP_NET_RAW) and the
pcap is written only when the scenario failed; "all" keeps every pcap, "off"
captures nothing. Measured on the whole catalogue the capture costs little
(see the README, "Packet captures"), which is why failures are captured by
default instead of being re-run.

What lands in the results record (through sockspec.plugin.stash.EXTRA_PROPERTY):
``pcap`` (relative to the results JSON's directory) and ``packet_summary``
(no metrics: packet counts are not measurements of the server). A failed
verdict of a family that declares ``cites`` also gets one or two "packets: ..."
lines appended to its evidence: how each connection ended, or where a reply
waited.

Unix stream sockets never cross an interface, so there is nothing to capture
for them; their kept records say so. Wire-level scenarios capture inside
their own namespace and hand the result over with the ``packet_evidence``
fixture.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sockspec.catalogue import spec_of
from sockspec.packets.capture import (
    CaptureResult,
    CaptureUnavailable,
    PacketCapture,
    capture_unavailable_reason,
    write_pcap,
)
from sockspec.packets.frames import FIN, RST, SYN, tcp_flags
from sockspec.packets.summary import EndTracker, summarize
from sockspec.packets.summary_text import cite, describe
from sockspec.plugin.stash import EXTRA_PROPERTY

CAPTURE_INTERFACE = "lo"
# After the scenario returns, wait this long at most for connections still
# closing (the server's FIN or RST answering the client's close), so the
# capture shows how they ended. Only paid while some connection is still open.
SETTLE_TIMEOUT_S = 0.05
SETTLE_POLL_S = 0.002
UNIX_NOTE = ("no capture: Unix stream sockets do not travel over a network interface, "
             "so there are no packets to record")
CAPTURE = pytest.StashKey["ItemCapture"]()


@dataclass
class PacketEvidence:
    """Handed to wire-level scenarios: they capture in their own namespace and attach here."""

    result: CaptureResult | None = None
    server_port: int = 0
    notes: list[str] = field(default_factory=list)

    def attach(self, result: CaptureResult, server_port: int) -> None:
        self.result, self.server_port = result, server_port

    def note(self, text: str) -> None:
        """A fact about the capture worth showing (e.g. what the kernel offered)."""
        self.notes.append(text)


@dataclass
class ItemCapture:
    cites: str  # the packet facts the family's failed verdicts cite (Family.cites)
    result: CaptureResult | None = None
    server_port: int = 0
    note: str = ""


def _regular_or_new(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return True
    except OSError:
        return False


class PacketCapturePlugin:
    """Registered once per process (controller and each xdist worker)."""

    def __init__(self, config: pytest.Config) -> None:
        self.mode: str = config.getoption("sockspec_capture")
        self.directory = self._capture_directory(config)
        self.relative_to = self._results_directory(config)
        self.unavailable: str | None = None
        if self.mode != "off":
            self.unavailable = capture_unavailable_reason(CAPTURE_INTERFACE)

    @staticmethod
    def _results_directory(config: pytest.Config) -> Path | None:
        """The directory of the first results file that is (or will be) a regular file.

        An output that is a device, FIFO or terminal (``--json /dev/null``,
        ``/dev/stdout``) says nothing about where files belong: pcaps never go
        into /dev.
        """
        for option in ("sockspec_json", "sockspec_html"):
            value = config.getoption(option, None)
            if value and _regular_or_new(value):
                return Path(os.path.abspath(value)).parent
        return None

    def _capture_directory(self, config: pytest.Config) -> Path | None:
        explicit = config.getoption("sockspec_capture_dir")
        if explicit:
            return Path(os.path.abspath(explicit))
        results = self._results_directory(config)
        return results / "pcaps" if results else None

    @pytest.fixture
    def packet_evidence(self) -> PacketEvidence:
        """Where a wire-level scenario puts the packets it captured itself."""
        return PacketEvidence()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item):
        plan = self._plan(item)
        capture = None
        if plan is not None and plan.note == "" and "packet_evidence" not in item.fixturenames:
            try:
                capture = PacketCapture(CAPTURE_INTERFACE, plan.server_port).start()
            except CaptureUnavailable as exc:
                plan.note = f"no capture: {exc}"
        if plan is not None:
            item.stash[CAPTURE] = plan
        try:
            yield
        finally:
            if capture is not None:
                settle(capture, plan.server_port)
                plan.result = capture.stop()
            evidence = item.funcargs.get("packet_evidence") if plan is not None else None
            if isinstance(evidence, PacketEvidence) and evidence.result is not None:
                plan.result, plan.server_port = evidence.result, evidence.server_port
                plan.note = "\n".join(evidence.notes)

    def _plan(self, item: pytest.Item) -> ItemCapture | None:
        """What to capture for this item, or None (not a scenario, or capture is off)."""
        if self.mode == "off":
            return None
        server = getattr(item, "funcargs", {}).get("server")
        spec = spec_of(getattr(item, "function", None))
        if server is None or spec is None:
            return None
        # A family that measures throughput, rates or tail latency declares capture =
        # "on-request": a capture beside it costs 20-40 % of what it measures.
        if self.mode == "failures" and spec.family.capture == "on-request":
            return None
        plan = ItemCapture(cites=spec.family.cites)
        if server.transport == "unix":
            plan.note = UNIX_NOTE
        elif self.unavailable:
            plan.note = f"no capture: {self.unavailable}"
        else:
            plan.server_port = server.address.port
        return plan

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        outcome = yield
        report = outcome.get_result()
        plan = item.stash.get(CAPTURE, None)
        if report.when != "call" or plan is None:
            return
        # A warning (a SHOULD missed) keeps its pcap like a failure does.
        judged = report.failed or bool(getattr(report, "sockspec_warning", None))
        keep = self.mode == "all" or judged
        if not keep:
            return
        extra = self.extra_facts(item, plan, judged)
        if not extra:
            return
        if extra.get("evidence") and isinstance(report.longrepr, str):
            report.longrepr = f"{report.longrepr}\n{extra['evidence']}"
        report.user_properties.append((EXTRA_PROPERTY, json.dumps(extra)))

    def extra_facts(self, item: pytest.Item, plan: ItemCapture, failed: bool) -> dict:
        """The fields for the results record: pcap, packet_summary, evidence."""
        if plan.result is None:
            # Unix, or no capture possible: say why, but only where it was asked for.
            return {"packet_summary": plan.note} if plan.note and self.mode == "all" else {}
        result = plan.result
        summary = summarize(result.segments(), plan.server_port, result.interface,
                            result.lost_packets, result.truncated)
        text = describe(summary)
        if plan.note:
            text = f"{text}\n{plan.note}"
        # No metrics: the report would list packet counts as measurements of the server.
        extra: dict = {"packet_summary": text}
        notes = []
        if self.directory is not None and result.frames:
            destination = self.directory / pcap_name(item)
            existed = destination.exists()
            try:
                path = write_pcap(destination, result.frames)
            except OSError as exc:
                # A full or read-only capture directory costs this item its pcap, not
                # the run its remaining items nor this item its verdict.
                if not existed:  # a half-written pcap of ours is of no use to anyone
                    with contextlib.suppress(OSError):
                        destination.unlink()
                reason = exc.strerror or str(exc)
                notes.append(f"warning: the packet capture could not be written to "
                             f"{destination}: {reason}")
            else:
                extra["pcap"] = (os.path.relpath(path, self.relative_to) if self.relative_to
                                 else str(path))
        if failed:
            cited = cite(summary, plan.cites)
            if cited:
                notes.insert(0, cited)
        if notes:
            extra["evidence"] = "\n".join(notes)
        return extra


def settle(capture: PacketCapture, server_port: int) -> None:
    """Wait briefly for connections still closing, so their FIN or RST is recorded."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        tracker = EndTracker(server_port)
        for segment in capture.snapshot_matching(opens_or_ends):
            tracker.feed(segment)
        if tracker.all_ended() or time.monotonic() >= deadline:
            return
        time.sleep(SETTLE_POLL_S)


def opens_or_ends(frame: bytes) -> bool:
    return bool((tcp_flags(frame) or 0) & (SYN | FIN | RST))


def pcap_name(item: pytest.Item) -> str:
    """A file name from the node id: scenario and parameter, safe on any filesystem."""
    name = getattr(item, "originalname", item.name).removeprefix("test_")
    param = getattr(getattr(item, "callspec", None), "id", "")
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{name}-{param}" if param else name) + ".pcap"


