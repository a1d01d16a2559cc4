"""Output paths (issue 16 §3): write into what the user named, replace nothing else.

--json, --html, --junitxml, `sockspec report -o` and the benchmark's --output are
checked before any work (one line, exit 2); a device or FIFO is written straight
into, a symlink is followed, a late failure costs only its own output (exit 1,
one line, no temporary file left).

Every end-to-end run here is one scenario over one transport. The tests that
make device nodes or mount a tmpfs need root (the project's test machines run
as root); they unmount what they mounted.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from sockspec.measure import bench
from sockspec.reports import outputs
from sockspec.reports.outputs import OutputError, check_outputs, write_output
from sockspec.reports.results import build_document, write_results

PROJECT = Path(__file__).resolve().parent.parent
ONE_ITEM = ("run", "--transport", "tcp", "echo_basic")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, mount)")


def sockspec(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sockspec", *args], cwd=PROJECT,
                          timeout=timeout, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)


def assert_one_line(result: subprocess.CompletedProcess, status: int, fragment: str) -> None:
    assert result.returncode == status, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sockspec: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def assert_refused_up_front(result: subprocess.CompletedProcess, fragment: str) -> None:
    """Exit 2 with one line, before pytest starts a session (no item ran)."""
    assert_one_line(result, 2, fragment)
    assert "passed" not in result.stdout and "test session starts" not in result.stdout
    assert result.stdout == ""


def temp_files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.name.endswith(".tmp")]


@contextmanager
def tmpfs(where: Path, *options: str):
    """A small tmpfs of our own at ``where``, unmounted afterwards."""
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(("size=64k", *options)), "tmpfs",
                    str(where)], check=True, timeout=30)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True, timeout=30)


def fill(directory: Path) -> None:
    """Fill a file system until it is full (ENOSPC)."""
    fd = os.open(directory / "fill", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


@needs_root
def test_dev_null_stays_a_character_device():
    before = os.stat("/dev/null")
    result = sockspec(*ONE_ITEM, "--json", "/dev/null", "--html", "/dev/null")
    assert result.returncode == 0, result.stdout + result.stderr
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode)
    assert (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)


@needs_root
def test_a_character_device_is_written_into_not_replaced(tmp_path):
    # A private null device: the same check as /dev/null without risking the machine's.
    node = tmp_path / "null"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    inode = node.stat().st_ino
    result = sockspec(*ONE_ITEM, "--json", str(node), "--junitxml", str(tmp_path / "j.xml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert stat.S_ISCHR(node.lstat().st_mode) and node.lstat().st_ino == inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.xml", "null"]


def test_a_fifo_gets_the_bytes(tmp_path):
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    # Our read end is open first, so the harness's open for writing does not block;
    # the results of one item (a few KiB) fit in the pipe's buffer.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        result = sockspec(*ONE_ITEM, "--json", str(fifo))
        chunks = []
        while True:
            try:
                chunk = os.read(reader, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(reader)
    assert result.returncode == 0, result.stdout + result.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    document = json.loads(b"".join(chunks))
    assert document["summary"]["total"] == 1
    assert temp_files(tmp_path) == []


def test_a_symlink_stays_and_its_target_gets_the_content(tmp_path):
    target_dir = tmp_path / "real"
    target_dir.mkdir()
    (target_dir / "r.json").write_text("old\n")
    os.chmod(target_dir / "r.json", 0o640)
    json_link = tmp_path / "r.json"
    json_link.symlink_to(target_dir / "r.json")
    html_link = tmp_path / "r.html"
    html_link.symlink_to(target_dir / "new" / "r.html")   # a dangling link: created through it
    result = sockspec(*ONE_ITEM, "--json", str(json_link), "--html", str(html_link))
    assert result.returncode == 0, result.stdout + result.stderr
    assert json_link.is_symlink() and html_link.is_symlink()
    assert json.loads((target_dir / "r.json").read_text())["summary"]["passed"] == 1
    assert stat.S_IMODE((target_dir / "r.json").stat().st_mode) == 0o640  # kept
    assert (target_dir / "new" / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert temp_files(tmp_path) == []


def test_a_directory_as_html_is_refused_before_any_item(tmp_path):
    result = sockspec(*ONE_ITEM, "--html", str(tmp_path), timeout=60)
    assert_refused_up_front(result, f"--html {tmp_path}: is a directory")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("second", ["--html", "--junitxml", "link"])
def test_the_same_path_twice_is_refused(tmp_path, second):
    path = tmp_path / "out" / "r.json"
    if second == "link":  # a symlink to the --json path: compared resolved
        (tmp_path / "out").mkdir()
        (tmp_path / "alias.html").symlink_to(path)
        other = ["--html", str(tmp_path / "alias.html")]
    else:
        other = [second, str(path)]
    result = sockspec(*ONE_ITEM, "--json", str(path), *other, timeout=60)
    assert_refused_up_front(result, "the same file as --json")
    assert not path.exists()


@needs_root
def test_a_read_only_location_is_refused_up_front(tmp_path):
    with tmpfs(tmp_path / "ro", "ro") as read_only:
        result = sockspec(*ONE_ITEM, "--json", str(tmp_path / "ok.json"),
                          "--html", str(read_only / "sub" / "r.html"), timeout=60)
        assert_refused_up_front(result, "read-only file system")
        assert str(read_only / "sub" / "r.html") in result.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "ro"]


@needs_root
def test_a_late_failure_keeps_the_other_outputs(tmp_path):
    html, junit = tmp_path / "r.html", tmp_path / "j.xml"
    with tmpfs(tmp_path / "full") as full:
        fill(full)
        result = sockspec(*ONE_ITEM, "--json", str(full / "r.json"), "--html", str(html),
                          "--junitxml", str(junit))
        assert sorted(p.name for p in full.iterdir()) == ["fill"]  # no r.json, no temp file
    assert_one_line(result, 1, f"cannot write results JSON {full / 'r.json'}: "
                               "No space left on device")
    assert html.read_text().startswith("<!DOCTYPE html>")
    assert "echo_basic" in junit.read_text()


def test_a_failing_write_removes_its_temp_file_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    path.write_text("old\n")

    def disk_full(fd, data):
        os.write(fd, bytes(data[:10]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs, "_write_all", disk_full)
    with pytest.raises(OutputError) as caught:
        write_results(path, build_document({}, [], []))
    assert str(caught.value) == f"cannot write results JSON {path}: No space left on device"
    assert caught.value.exit_status == 1
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_report_output_is_checked_before_rendering(tmp_path):
    results = tmp_path / "r.json"
    write_results(results, build_document({}, [], []))
    assert_one_line(sockspec("report", str(results), "-o", str(tmp_path)), 2,
                    f"-o {tmp_path}: is a directory")
    assert_one_line(sockspec("report", str(results), "-o", str(results)), 2,
                    f"-o {results}: the same file as the input {results}")
    assert json.loads(results.read_text())["schema"] == "sockspec.results/1"
    link = tmp_path / "report.html"
    link.symlink_to(tmp_path / "target.html")
    result = sockspec("report", str(results), "-o", str(link))
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and (tmp_path / "target.html").read_text().startswith("<!DOCTYPE")


def test_bench_output_is_checked_before_measuring(tmp_path):
    with pytest.raises(OutputError) as caught:
        bench.parse(["--output", str(tmp_path)])
    assert caught.value.exit_status == 2 and "is a directory" in str(caught.value)


def test_one_fifo_twice_is_refused_identical_character_devices_are_not(tmp_path):
    check_outputs([("--json", "/dev/null"), ("--html", "/dev/null")])  # harmless
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    result = sockspec(*ONE_ITEM, "--json", str(fifo), "--html", str(fifo), timeout=60)
    assert_refused_up_front(result, f"--html {fifo}: the same file as --json {fifo}")
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_a_socket_is_refused_not_replaced(tmp_path):
    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        result = sockspec(*ONE_ITEM, "--json", str(path), timeout=60)
        assert_refused_up_front(result, f"--json {path}: is a socket")
        assert stat.S_ISSOCK(path.lstat().st_mode)
        with pytest.raises(OutputError, match="it is a socket"):
            write_output(path, "x")


@needs_root
@pytest.mark.selftest
def test_pcaps_never_go_beside_a_device_output(tmp_path):
    """`--json /dev/null`: a failed scenario's pcap must not land in /dev/pcaps.

    A private null device stands in for /dev/null; the faulty linger_zero_echo
    fails graceful-close, whose capture is kept by default.
    """
    node = tmp_path / "null"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    faulty = PROJECT / "fixtures" / "faulty" / "linger_zero_echo.py"
    command = f"{sys.executable} {faulty} --profile echo -h {{host}} -p {{port}}"
    result = sockspec("run", "--server-cmd", command, "--profile", "echo", "--transport", "tcp",
                      "--json", str(node), "graceful-close", timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert stat.S_ISCHR(node.stat().st_mode)
    assert not (tmp_path / "pcaps").exists()
