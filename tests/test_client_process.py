"""Run-to-completion clients (sockspec.process.client): status, output, limits, cleanup."""

from __future__ import annotations

import os
import sys
import time

import pytest

from sockspec.errors import ClientStartError
from sockspec.process.client import KEEP_FIRST_BYTES, CapturedOutput, run_client
from sockspec.reference.stream_digest import bytes_digest
from sockspec.transport import TcpAddress

NOWHERE = TcpAddress("127.0.0.1", 9)  # only named in logs; nothing connects to it
GENEROUS = 60.0                       # "did not hang" bound on a shared, noisy machine


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_exit_status_stdout_and_stderr_are_kept(tmp_path):
    code = ("import sys; sys.stdout.buffer.write(bytes(range(256)) * 4); "
            "print('client: gave up', file=sys.stderr); sys.exit(3)")
    run = run_client(python(code), cwd=".", time_limit=GENEROUS, log_dir=tmp_path, name="c",
                     address=NOWHERE)
    assert run.exit_status == 3 and not run.timed_out
    assert run.stdout.head == bytes(range(256)) * 4 and run.stdout.length == 1024
    assert run.stdout.digest == bytes_digest(bytes(range(256)) * 4)
    assert "client: gave up" in run.stderr_tail and run.stderr_lines() == "client: gave up"
    assert "exited with status 3" in run.describe_exit()


def test_stdin_is_the_given_file(tmp_path):
    source = tmp_path / "in.bin"
    source.write_bytes(b"\x00input\xff")
    run = run_client(python("import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"),
                     cwd=".", time_limit=GENEROUS, log_dir=tmp_path, name="c", address=NOWHERE,
                     stdin_path=source)
    assert run.stdout.head == b"\x00input\xff"


def test_large_output_is_hashed_not_kept(tmp_path):
    code = "import sys\nb = bytes(1 << 20)\nfor _ in range(64): sys.stdout.buffer.write(b)"
    run = run_client(python(code), cwd=".", time_limit=GENEROUS, log_dir=tmp_path, name="c",
                     address=NOWHERE)
    assert run.exit_status == 0 and run.stdout.length == 64 << 20
    assert len(run.stdout.head) == KEEP_FIRST_BYTES and not run.stdout.complete_in_head
    assert run.stdout.digest == bytes_digest(bytes(64 << 20))


def test_time_limit_stops_the_whole_group(tmp_path):
    pid_file = tmp_path / "child.pid"
    code = (f"import subprocess, time; p = subprocess.Popen(['sleep', '300']); "
            f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(300)")
    started = time.monotonic()
    run = run_client(python(code), cwd=".", time_limit=1.0, log_dir=tmp_path, name="c",
                     address=NOWHERE)
    assert run.timed_out and time.monotonic() - started < GENEROUS
    assert "stopped by the harness" in run.describe_exit()
    assert not pid_alive(int(pid_file.read_text()))


def test_children_left_behind_are_stopped(tmp_path):
    pid_file = tmp_path / "child.pid"
    code = (f"import subprocess; p = subprocess.Popen(['sleep', '300']); "
            f"open({str(pid_file)!r}, 'w').write(str(p.pid))")
    run = run_client(python(code), cwd=".", time_limit=GENEROUS, log_dir=tmp_path, name="c",
                     address=NOWHERE)
    assert run.exit_status == 0 and not run.timed_out
    assert not pid_alive(int(pid_file.read_text()))


def test_missing_program_is_one_clear_error(tmp_path):
    with pytest.raises(ClientStartError, match="cannot start ./no-such-client"):
        run_client(["./no-such-client"], cwd=".", time_limit=5, log_dir=tmp_path, name="c",
                   address=NOWHERE)


def test_output_file_capture(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"abc" * 10)
    captured = CapturedOutput.of_file(path)
    assert captured.length == 30 and captured.head == b"abc" * 10 and not captured.missing
    missing = CapturedOutput.of_file(tmp_path / "absent.bin")
    assert missing.missing and "never created" in missing.describe()
