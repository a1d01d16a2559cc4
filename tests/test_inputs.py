"""Inputs (issue 16 §8): options and targets files refused or warned about in one line.

Every `sockspec run` here collects only (`-- --co`) or is refused before pytest
starts, so nothing runs even where the check were missing.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from sockspec.targets.selection import max_workers

PROJECT = Path(__file__).resolve().parent.parent
ONE_ITEM = ("run", "--transport", "tcp", "echo_basic")


def sockspec(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sockspec", *args], cwd=PROJECT,
                          timeout=timeout, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sockspec: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""


@pytest.mark.parametrize("value", ["nan", "inf", "1e9"])
def test_ready_timeout_must_be_finite_and_bounded(value):
    result = sockspec(*ONE_ITEM, "--ready-timeout", value, "--", "--co")
    assert_one_line_error(result, f"argument --ready-timeout: must be a number of seconds "
                                  f"above 0 and at most 120, got {value!r}")


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf"])
def test_ready_timeout_is_refused_under_plain_pytest(value):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "scenarios", "-p", "no:cacheprovider", "-q", "--co",
         "--target", "reference-echo", "--transport", "tcp", "--ready-timeout", value],
        cwd=PROJECT, timeout=60, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert result.returncode == 4, result.stdout + result.stderr  # pytest's usage error
    assert "argument --ready-timeout: must be a number of seconds above 0" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("workers", [str(max_workers() + 1), "999999"])
def test_too_many_workers_are_refused(workers):
    result = sockspec(*ONE_ITEM, "-n", workers, "--", "--co")
    assert_one_line_error(result, f"-n {workers}: at most {max_workers()} workers here")
    assert max_workers() >= 4  # -n 2 (what tox uses) stays well inside
    result = sockspec(*ONE_ITEM, "-n", "2")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("extra", [[], ["--profile", "echo"]])
def test_an_empty_server_command_says_so(extra):
    result = sockspec(*ONE_ITEM, "--server-cmd", "", *extra, "--", "--co")
    assert_one_line_error(result, "--server-cmd is empty")


@pytest.mark.parametrize("command, profile, fragment", [
    ("./srv", "echo", "--server-cmd: the command never mentions {port} or {hostport}"),
    ("./srv -p {port}", "http", "--server-cmd: an http server command must take the "
                                "document root {root}"),
])
def test_server_command_errors_speak_of_the_flag(command, profile, fragment):
    result = sockspec(*ONE_ITEM, "--server-cmd", command, "--profile", profile, "--", "--co")
    assert_one_line_error(result, fragment)
    assert "key " not in result.stderr


TYPOS = """\
verbose = true

[[servers]]
name = "typo"

[[server]]
name = "srv"
profile = "echo"
tcp = [PYTHON, "-m", "sockspec.reference.server", "--profile", "echo", "-p", "{port}"]
ipv66 = true

[[client]]
name = "c1"
profile = "echo"
tcp = ["cli", "{hostport}"]
timeout = 5

[[client]]
name = "c2"
profile = "echo"
tcp = ["cli", "{hostport}"]
timeout = 5
"""

EXPECTED_WARNINGS = [
    "top level: unknown key 'verbose' ignored; known: server, client, protocol, protocols, toxic",
    "top level: unknown key 'servers' ignored; did you mean 'server'?",
    "[[server]] #1 ('srv'): unknown key 'ipv66' ignored; did you mean 'ipv6'?",
    "[[client]] #1 ('c1'): unknown key 'timeout' ignored; did you mean 'timeout_s'?",
]


def warnings_of(stderr: str, file: Path) -> list[str]:
    prefix = f"sockspec: warning: {file}: "
    lines = stderr.strip().splitlines()
    assert all(line.startswith(prefix) for line in lines), stderr
    return [line[len(prefix):] for line in lines]


def typos_file(tmp_path: Path) -> Path:
    file = tmp_path / "t.toml"
    file.write_text(TYPOS.replace("PYTHON", f'"{sys.executable}"'))
    return file


def test_unknown_keys_warn_once_each_at_targets(tmp_path):
    file = typos_file(tmp_path)
    result = sockspec("targets", str(file))
    assert result.returncode == 0, result.stderr
    assert warnings_of(result.stderr, file) == EXPECTED_WARNINGS
    assert "c2  client" in result.stdout  # the file still loads whole


def test_unknown_keys_warn_once_each_at_run(tmp_path):
    file = typos_file(tmp_path)
    result = sockspec("run", "--targets", str(file), "--target", "srv", "--transport", "tcp",
                      "echo_basic")
    assert result.returncode == 0, result.stdout + result.stderr
    assert warnings_of(result.stderr, file) == EXPECTED_WARNINGS  # not again from pytest


@pytest.mark.parametrize("table, message", [
    ('[[server]]\nname = "a"\ntcp = ["x", "{port}"]\n',
     "[[server]] #1 ('a'): missing key 'profile' (\"echo\" or \"http\")"),
    ('[[server]]\nprofile = "echo"\ntcp = ["x", "{port}"]\n',
     "[[server]] #1: missing key 'name'"),
    ('[[client]]\nname = "c"\ntcp = ["x", "{port}"]\n',
     "[[client]] #1 ('c'): missing key 'profile'"),
    ('[[client]]\nprofile = "echo"\ntcp = ["x", "{port}"]\n',
     "[[client]] #1: missing key 'name'"),
])
def test_a_missing_key_is_named_missing(tmp_path, table, message):
    file = tmp_path / "t.toml"
    file.write_text(table)
    result = sockspec("targets", str(file))
    assert_one_line_error(result, f"{file}: {message}")
    assert "None" not in result.stderr


def test_license_uses_the_spdx_string_form():
    """setuptools deprecates project.license as a table; the string needs setuptools>=77."""
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"
    assert "setuptools>=77" in project["build-system"]["requires"]
