"""Issue 17: one import package, a public API, an inert pytest plugin (pytest11), and
scenarios in the user's own repository (the example project) as first-class citizens."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
EXAMPLE = PROJECT / "examples" / "my_server"
BIN = Path(sys.executable).parent
TIMEOUT_S = 120


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S,
                          stdin=subprocess.DEVNULL)


def pytest_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]


def sockspec_cmd(*args: str) -> list[str]:
    return [str(BIN / "sockspec"), *args]


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of the example project: a user's repository outside sockspec's tree."""
    copy = tmp_path / "my_server"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("__pycache__", "out"))
    return copy


UNRELATED = '''
import signal
import sys


def test_sockspec_stays_out_of_the_way(request):
    loaded = {m for m in sys.modules if m == "sockspec" or m.startswith("sockspec.")}
    assert loaded <= {"sockspec", "sockspec.plugin", "sockspec.plugin.options",
                      "sockspec.targets"}, loaded
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    markers = request.config.getini("markers")
    assert not any(m.startswith(("basic:", "half-close:")) for m in markers), markers
    for name in ("server", "client", "metrics"):
        try:
            request.getfixturevalue(name)
        except Exception as exc:
            assert type(exc).__name__ == "FixtureLookupError", exc
        else:
            raise AssertionError(f"fixture {name} exists in an unrelated session")
'''


def test_an_unrelated_pytest_session_loads_only_the_option_table(tmp_path):
    (tmp_path / "test_unrelated.py").write_text(UNRELATED)
    done = run(pytest_cmd("-q", "test_unrelated.py"), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # The plugin is registered by its entry point and declares its options.
    helptext = run(pytest_cmd("--help"), tmp_path).stdout
    assert "--sockspec-json" in helptext and "--sockspec-catalogue" in helptext


def test_no_p_option_is_needed_anywhere():
    for path in (PROJECT / "pyproject.toml", PROJECT / "tox.ini", PROJECT / "harness" / "cli.py"):
        assert "-p harness" not in path.read_text() and "pytest_plugin" not in path.read_text()


def test_import_sockspec_gives_the_public_api_lazily():
    probe = ("import sys, sockspec; assert 'sockspec.catalogue' not in sys.modules; "
             "from sockspec import scenario, client_scenario, Family, expect, fail, "
             "expect_same_bytes, connect, send_all, read_until_end, StreamEnd, Metrics; "
             "assert callable(scenario) and not isinstance(scenario, type(sys)); "
             "missing = [n for n in sockspec.__all__ if getattr(sockspec, n, None) is None]; "
             "assert not missing, missing; "
             "shadowed = [n for n in sockspec.__all__ if isinstance(getattr(sockspec, n), "
             "type(sys))]; assert not shadowed, shadowed; print(sockspec.__version__)")
    done = run([sys.executable, "-c", probe], PROJECT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == version("sockspec")


def test_the_public_api_covers_what_the_builtin_scenarios_import():
    """A scenario of the user's can do what a built-in one does with ``import sockspec``."""
    import ast

    import sockspec

    # A function named like its own module cannot be a package attribute: the submodule
    # wins once imported. Documented in sockspec/__init__.py.
    same_name_as_module = {"sockspec.preparing.preparing"}
    missing = []
    for path in sorted((PROJECT / "scenarios").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.module
                    and node.module.startswith("sockspec.")
                    and not node.module.startswith("sockspec.scenarios")):
                continue
            module = __import__(node.module, fromlist=["_"])
            for alias in node.names:
                if f"{node.module}.{alias.name}" in same_name_as_module:
                    continue
                if alias.name not in sockspec.__all__ or \
                        getattr(sockspec, alias.name) is not getattr(module, alias.name):
                    missing.append(f"{path.name}: {node.module}.{alias.name}")
    assert not missing, missing


def test_the_installed_package_is_the_one_name_sockspec():
    import sockspec

    assert Path(sockspec.__file__).parent == PROJECT / "harness"
    for name in ("harness", "reports", "scenarios", "fixtures"):
        found = run([sys.executable, "-c", f"import {name}"], Path("/"))
        assert found.returncode != 0, f"{name} is importable outside the checkout"


def test_results_carry_the_package_metadata_version(example):
    out = example / "r.json"
    done = run(sockspec_cmd("run", "tests", "--targets", "servers.toml", "--transport", "tcp",
                            "--json", str(out)), example)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(out.read_text())["run"]["sockspec_version"] == version("sockspec")


def test_example_project_with_plain_pytest_and_strict_markers(example):
    done = run(pytest_cmd("-m", "pipelining", "--strict-markers", "-q"), example)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout
    chosen = run(pytest_cmd("--scenario", "echo_pipelined", "--transport", "unix", "-q",
                            "--sockspec-json", "r.json"), example)
    assert chosen.returncode == 0, chosen.stdout + chosen.stderr
    (record,) = json.loads((example / "r.json").read_text())["results"]
    assert (record["family"], record["transport"], record["outcome"]) == \
        ("pipelining", "unix", "passed")
    unknown = run(pytest_cmd("--scenario", "no_such_scenario", "-q"), example)
    assert unknown.returncode == 4 and "no scenario or family named" in unknown.stderr


def test_example_project_with_sockspec_run_list_and_reproduce(example, tmp_path):
    listed = run(sockspec_cmd("list", "tests", "--no-catalogue"), example)
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[:3] for line in listed.stdout.splitlines()] == \
        [["echo_pipelined", "pipelining", "echo"]]
    out = tmp_path / "results.json"
    done = run(sockspec_cmd("run", "tests", "--targets", "servers.toml", "--html",
                            str(tmp_path / "r.html"), "--json", str(out)), example)
    assert done.returncode == 0, done.stdout + done.stderr
    records = json.loads(out.read_text())["results"]
    assert {(r["scenario"], r["transport"]) for r in records} == {
        ("echo_pipelined", t) for t in ("tcp", "tcp6", "unix")}
    assert "pipelining" in (tmp_path / "r.html").read_text()
    # The reproduce command reruns exactly that item, from the directory of the run.
    record = next(r for r in records if r["transport"] == "tcp6")
    rerun_json = tmp_path / "rerun.json"
    rerun = run([*sockspec_cmd(*shlex.split(record["reproduce"])[1:]), "--json",
                 str(rerun_json)], example)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert [(r["scenario"], r["target"], r["transport"])
            for r in json.loads(rerun_json.read_text())["results"]] == \
        [("echo_pipelined", "my_echo", "tcp6")]


def test_catalogue_can_be_added_to_a_run_of_ones_own_scenarios(example, tmp_path):
    out = tmp_path / "r.json"
    done = run(sockspec_cmd("run", "tests", "--with-catalogue", "--target", "reference-echo",
                            "--transport", "unix", "echo_pipelined", "echo_basic", "--json",
                            str(out)), example)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(r["scenario"] for r in json.loads(out.read_text())["results"]) == \
        ["echo_basic", "echo_pipelined"]
    without = run(sockspec_cmd("run", "tests", "--target", "reference-echo", "echo_basic"),
                  example)
    assert without.returncode == 2
    assert without.stderr.strip() == \
        "sockspec: no scenario or family named 'echo_basic' (see `sockspec list`)"


def test_cli_and_plugin_share_one_option_table():
    from sockspec.cli import build_parser
    from sockspec.plugin.options import OPTIONS, pytest_args

    run_parser = build_parser()._subparsers._group_actions[0].choices["run"]
    cli_flags = {s for action in run_parser._actions for s in action.option_strings}
    assert {o.cli_flag for o in OPTIONS if o.cli_flag} <= cli_flags
    args = run_parser.parse_args(["--target", "a", "--target", "b", "--json", "x.json",
                                  "--allow-remote", "--ready-timeout", "3"])
    converted = pytest_args(args)
    assert converted[:4] == ["--target", "a", "--target", "b"]
    assert "--allow-remote" in converted and converted[converted.index("--ready-timeout") + 1] \
        == "3.0"
    assert Path(converted[converted.index("--sockspec-json") + 1]).is_absolute()
