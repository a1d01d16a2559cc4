"""The HTML report in a real headless Chromium (Debian's chromium package).

Drives the browser over the DevTools protocol (websocket-client package): it
records every console message, exception and network request of the page, so
"no console error, no request" is observed, not inferred. Chromium missing is a
failure, not a skip: CI installs it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from report_samples import baseline_document, mixed_document

from sockspec.reports.html import write_html_report

CHROMIUM = "/usr/bin/chromium"
BROWSER_DEADLINE_S = 25.0


class DevToolsPage:
    """A page of a headless Chromium, driven over the DevTools protocol; records events."""

    def __init__(self, websocket_url: str, deadline: float) -> None:
        import websocket  # websocket-client, a test dependency

        self.deadline = deadline
        # Chromium refuses DevTools websockets that carry an Origin it does not allow.
        self.socket = websocket.create_connection(
            websocket_url, suppress_origin=True, timeout=self._remaining(),
            http_no_proxy=["127.0.0.1", "localhost"])
        self.events: list[dict] = []
        self.next_id = 0

    def _remaining(self) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("headless Chromium did not answer in time")
        return remaining

    def _receive(self) -> dict:
        self.socket.settimeout(self._remaining())
        return json.loads(self.socket.recv())

    def call(self, method: str, **params: object) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = self._receive()
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for_event(self, method: str) -> dict:
        while True:
            for event in self.events:
                if event.get("method") == method:
                    return event
            self.events.append(self._receive())

    def evaluate(self, expression: str) -> object:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} raised {result['exceptionDetails']}")
        return result["result"].get("value")

    def close(self) -> None:
        self.socket.close()


def start_chromium(base_dir: str, log_path: Path) -> subprocess.Popen:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} not found: this test needs Debian's chromium "
                    "(apt-get install -y chromium)", pytrace=False)
    # HOME and XDG dirs point into base_dir, or Chromium writes its crash database
    # and dconf cache under the real home directory.
    env = dict(os.environ, HOME=base_dir, XDG_CONFIG_HOME=f"{base_dir}/config",
               XDG_CACHE_HOME=f"{base_dir}/cache")
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--hide-scrollbars", f"--user-data-dir={base_dir}/profile",
             "--remote-debugging-port=0", "--window-size=1400,1000", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True)


def processes_using(path: str) -> list[int]:
    """PIDs whose command line mentions ``path``: Chromium's crashpad handlers live in
    sessions of their own, out of reach of killpg, but name our base_dir."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if path.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def stop_chromium(process: subprocess.Popen, base_dir: str) -> None:
    """SIGTERM the browser's group; SIGKILL what is left, by group then by PID; bounded."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            # Zygote and renderers share the group and may outlive the browser briefly.
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    process.wait(timeout=5)
    deadline = time.monotonic() + 5
    while processes_using(base_dir) and time.monotonic() < deadline:
        time.sleep(0.05)  # crashpad exits by itself once the browser is gone
    for pid in processes_using(base_dir):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def devtools_page_url(base_dir: str, deadline: float) -> str:
    active_port = Path(base_dir, "profile", "DevToolsActivePort")
    while True:
        lines = active_port.read_text().split("\n") if active_port.exists() else []
        if len(lines) >= 2 and lines[0].strip():
            break
        if time.monotonic() > deadline:
            raise TimeoutError("Chromium did not open its DevTools port")
        time.sleep(0.05)  # polling a file Chromium writes; bounded by the deadline
    # No proxy: a CI's http_proxy variable must not catch a loopback request.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{int(lines[0])}/json/list", timeout=5) as answer:
        targets = json.load(answer)
    return next(t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page")


def save_artifact(png: bytes, path: Path) -> None:
    path.write_bytes(png)
    artifacts = os.environ.get("SOCKSPEC_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(artifacts) / path.name)


def test_report_in_headless_chromium(tmp_path: Path):
    report = tmp_path / "report.html"
    write_html_report(mixed_document(), report, baseline=baseline_document())
    url = report.resolve().as_uri()
    deadline = time.monotonic() + BROWSER_DEADLINE_S
    base_dir = tempfile.mkdtemp(prefix="ss-chrome-")
    process = start_chromium(base_dir, tmp_path / "chromium.log")
    page = None
    try:
        page = DevToolsPage(devtools_page_url(base_dir, deadline), deadline)
        for domain in ("Runtime", "Log", "Network", "Page"):
            page.call(f"{domain}.enable")
        page.call("Emulation.setDeviceMetricsOverride", width=1400, height=1000,
                  deviceScaleFactor=1, mobile=False)
        page.call("Page.navigate", url=url)
        page.wait_for_event("Page.loadEventFired")

        assert page.evaluate("document.body.dataset.rendered") == "1"
        matrix = page.evaluate("""(() => {
            const t = document.getElementById('matrix-table'), r = t.getBoundingClientRect();
            return {w: r.width, h: r.height, top: r.top, rows: t.tBodies[0].rows.length,
                    shown: getComputedStyle(t).visibility === 'visible'};
        })()""")
        assert matrix["rows"] == 3 and matrix["shown"]
        assert matrix["w"] > 300 and matrix["h"] > 60 and 0 < matrix["top"] < 1000
        # Sorting by failures puts the most broken target first, in both tables.
        first = page.evaluate("""(() => {
            const top = id => document.querySelector(`#${id} tbody tr`).dataset.name;
            const before = top('matrix-table-client');
            document.querySelector('button[data-sort=broken]').click();
            return [before, top('matrix-table'), top('matrix-table-client')];
        })()""")
        assert first == ["ref-client", "flaky", "worse-client"]
        # A passing cell filters the results list down to its items.
        shown = page.evaluate("""(() => {
            document.querySelector('#matrix-table a[href="#results"]').click();
            return document.getElementById('filter-count').textContent;
        })()""")
        assert re.fullmatch(r"showing [1-9]\d* of 18", shown), shown
        page.evaluate("scrollTo(0, 0)")
        shot = page.call("Page.captureScreenshot", format="png")
        png = base64.b64decode(shot["data"])
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
        save_artifact(png, tmp_path / "report-top.png")
        height = page.call("Page.getLayoutMetrics")["cssContentSize"]["height"]
        full = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": 1400, "height": min(height, 12000),
                               "scale": 1})
        save_artifact(base64.b64decode(full["data"]), tmp_path / "report-full.png")

        page.evaluate("1")  # a last round trip: events queued before it are now recorded
        problems = [e for e in page.events if e.get("method") == "Runtime.exceptionThrown"
                    or (e.get("method") == "Runtime.consoleAPICalled"
                        and e["params"]["type"] in ("error", "assert", "warning"))
                    or (e.get("method") == "Log.entryAdded"
                        and e["params"]["entry"]["level"] in ("error", "warning"))]
        assert problems == []
        requests = [e["params"]["request"]["url"] for e in page.events
                    if e.get("method") == "Network.requestWillBeSent"]
        assert requests and all(u == url or u.startswith("data:") for u in requests), requests
    finally:
        if page is not None:
            page.close()
        stop_chromium(process, base_dir)
        shutil.rmtree(base_dir, ignore_errors=True)
