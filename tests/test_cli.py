"""The sockspec command: listing, validation, and one-line errors for bad input."""

import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent


def sockspec(*args: str, cwd: Path = PROJECT, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sockspec", *args], cwd=cwd, timeout=timeout,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)


def assert_one_line_error(result: subprocess.CompletedProcess, status: int, fragment: str):
    assert result.returncode == status, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sockspec: ") and fragment in lines[0]
    assert "Traceback" not in result.stderr


def test_list_shows_every_scenario_with_family_and_profiles():
    result = sockspec("list")
    assert result.returncode == 0
    rows = {line.split()[0]: line.split()[1:3] for line in result.stdout.splitlines()}
    assert rows["echo_basic"] == ["basic", "echo"]
    assert rows["http_basic"] == ["basic", "http"]


def test_targets_validates_and_lists(tmp_path):
    (tmp_path / "t.toml").write_text(
        '[[server]]\nname = "a"\nprofile = "echo"\ntcp = ["srv", "{port}"]\n')
    result = sockspec("targets", str(tmp_path / "t.toml"))
    assert result.returncode == 0
    assert "a  profile=echo  transports=tcp" in result.stdout


@pytest.mark.parametrize("args, fragment", [
    (["run", "--transport", "udp"], "invalid choice: 'udp'"),
    (["run", "--bogus"], "unrecognized arguments: --bogus"),
    (["run", "--target", "nope"], "unknown target 'nope'"),
    (["run", "no_such_scenario"], "no scenario or family named 'no_such_scenario'"),
    (["run", "--targets", "/nonexistent/t.toml"], "no such targets file"),
    (["run", "--server-cmd", "./srv -p {port}"], "--server-cmd needs --profile"),
    (["run", "--client-cmd", "./cli {hostport}"], "--client-cmd needs --profile"),
    (["run", "--client-cmd", "./cli", "--profile", "echo"],
     "--client-cmd: the command never mentions {port} or {hostport} or {url}"),
    (["run", "--client-cmd", "./cli {hostport} '", "--profile", "echo"],
     "--client-cmd: cannot split"),
    (["run", "--client-cmd", "./get {hostport}", "--profile", "http"],
     "must take {url_path} or {url}"),
    (["run", "-n", "lots"], "-n wants a number"),
    (["list", "--family", "nope"], "no family named"),
    (["report", "/nonexistent.json", "-o", "/tmp/x.html"], "no such results file"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
])
def test_bad_input_is_one_line_and_exit_2(args, fragment):
    assert_one_line_error(sockspec(*args), 2, fragment)


def test_bad_targets_file_names_table_and_key(tmp_path):
    (tmp_path / "t.toml").write_text('[[server]]\nname = "a"\nprofile = "ftp"\ntcp = ["x"]\n')
    result = sockspec("run", "--targets", str(tmp_path / "t.toml"))
    assert_one_line_error(result, 2, "[[server]] #1 ('a'): key 'profile'")


def test_options_after_a_selector_and_pytest_passthrough(tmp_path):
    out = tmp_path / "r.json"
    result = sockspec("run", "echo_basic", "--transport", "unix", "--json", str(out),
                      "--", "--co")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test_echo_basic[reference-echo-unix]" in result.stdout
