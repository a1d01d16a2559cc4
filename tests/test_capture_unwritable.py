"""A packet capture that cannot be written is a warning on its item, not the end of the run.

The capture directory is a 1 MiB tmpfs, full or read-only; the server is the
faulty linger_zero_echo (its close sends RST, so graceful-close fails and its
capture is kept). The failing scenario must stay failed with the warning in its
evidence, and the items after it must still run.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from sockspec_runner import FAULTY_DIR, run_sockspec, server_cmd

pytestmark = pytest.mark.selftest

FAILING = "echo_close_after_late_read"


def fill(directory: Path) -> None:
    """Write until the filesystem says it is full."""
    with open(directory / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


@pytest.fixture(params=["full", "read-only"])
def capture_dir(request, tmp_path):
    directory = tmp_path / "captures"
    directory.mkdir()
    options = "size=1m,ro" if request.param == "read-only" else "size=1m"
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory)], check=True,
                   timeout=30)
    try:
        if request.param == "full":
            fill(directory)
        yield directory
    finally:
        subprocess.run(["umount", str(directory)], check=True, timeout=30)


def test_an_unwritable_capture_is_a_warning_and_the_run_goes_on(tmp_path, capture_dir):
    html = tmp_path / "report.html"
    outcome = run_sockspec(
        *server_cmd(FAULTY_DIR / "linger_zero_echo.py", "echo", "tcp"), "--transport", "tcp",
        "--capture-dir", str(capture_dir), "--html", str(html), "graceful-close", "half-close",
        timeout=300)
    assert "INTERNALERROR" not in outcome.stdout + outcome.stderr
    assert outcome.status == 1, outcome.stdout[-3000:]
    document = outcome.document
    assert document is not None and document["run"]["status"] == "complete"
    assert document["not_run"] == []
    (failing,) = outcome.results(scenario=FAILING)
    assert failing["outcome"] == "failed"
    assert failing["pcap"] == ""
    assert re.search(rf"warning: the packet capture could not be written to \S+{FAILING}\S*"
                     r"\.pcap: (No space left on device|Read-only file system)",
                     failing["evidence"]), failing["evidence"]
    later = outcome.results(family="half-close")
    assert later and all(r["outcome"] == "passed" for r in later), later
    assert "FAILED" in re.search(r'<div class="v-title">([^<]*)</div>', html.read_text()).group(1)
    assert [p.name for p in capture_dir.iterdir()] in ([], ["filler"])  # no half-written pcap
