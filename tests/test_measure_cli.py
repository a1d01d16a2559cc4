"""python -m sockspec.measure: measurements from the command line, bad input refused up front."""

import json
import subprocess
import sys

import pytest
from measure_servers import ScriptedServer, close_at_once, echo

from sockspec.measure.cli import main


@pytest.mark.parametrize("argv", [
    ["latency", "{a}", "--count", "300", "--warmup", "10"],
    ["latency", "{a}", "--count", "200", "--warmup", "10", "--generators", "2"],
    ["latency", "{a}", "--count", "200", "--warmup", "10", "--rate", "2000"],
    ["latency", "{a}", "--count", "200", "--warmup", "10", "--engine", "python"],
    ["latency", "{a}", "--count", "200", "--warmup", "10", "--rate", "2000", "--engine",
     "python"],
    ["connrate", "{a}", "--seconds", "0.2"],
    ["connrate", "{a}", "--seconds", "0.2", "--generators", "2"],
    ["connrate", "{a}", "--seconds", "0.2", "--engine", "python"],
    ["concurrent", "{a}", "-n", "150"],
    ["throughput", "{a}", "--bytes", "3000000"],
])
def test_each_measurement_runs_and_writes_its_metrics(argv, tmp_path, capsys):
    out = tmp_path / "m.json"
    with ScriptedServer(echo) as address:
        status = main([part.format(a=address) for part in argv] + ["--json", str(out)])
    assert status == 0, capsys.readouterr()
    written = json.loads(out.read_text())
    assert written["ok"] is True and written["command"] == argv[0]
    assert written["metrics"]
    if argv[0] == "latency":
        generators = int(argv[argv.index("--generators") + 1]) if "--generators" in argv else 1
        assert written["metrics"]["latency_count"] == int(argv[3]) * generators
    if argv[0] in ("latency", "connrate"):
        engine = "python" if "python" in argv else "native"
        assert f"{engine} engine)" in capsys.readouterr().out


def test_failures_exit_1():
    with ScriptedServer(close_at_once) as address:
        assert main(["concurrent", str(address), "-n", "20", "--timeout", "5"]) == 1


@pytest.mark.parametrize("argv, words", [
    (["latency", "tcp:127.0.0.1:9", "--size", "0"], "at least 1 byte"),
    (["latency", "tcp:127.0.0.1:9", "--rate", "0"], "rate"),
    (["latency", "tcp:127.0.0.1:9", "--generators", "0"], "--generators"),
    (["latency", "tcp:127.0.0.1:9", "--engine", "c"], "invalid choice: 'c'"),
    (["connrate", "tcp:127.0.0.1:9", "--engine", "c"], "invalid choice: 'c'"),
    (["connrate", "tcp:127.0.0.1:9", "--seconds", "-1"], "duration"),
    (["concurrent", "tcp:127.0.0.1:9", "-n", "2000000"], "RLIMIT_NOFILE"),
    (["concurrent", "tcp:127.0.0.1:9", "-n", "-3"], "at least 1"),
    (["throughput", "tcp:127.0.0.1:9", "--bytes", "-1"], "at least 1 byte"),
    (["latency", "tcp:10.1.2.3:80"], "not a loopback address"),
])
def test_impossible_requests_are_one_line_and_exit_2(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err


def test_the_module_runs_as_a_command():
    done = subprocess.run([sys.executable, "-m", "sockspec.measure", "concurrent",
                           "tcp:127.0.0.1:9", "-n", "0"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("sockspec measure: ") and len(done.stderr.splitlines()) == 1


def test_a_json_path_that_cannot_take_output_is_refused_before_measuring(tmp_path, capsys):
    # A directory: one line, exit 2, and nothing measured (the server is never contacted).
    with ScriptedServer(echo) as address:
        status = main(["throughput", str(address), "--bytes", "1000", "--json", str(tmp_path)])
    err = capsys.readouterr()
    assert status == 2 and err.out == ""
    assert err.err.strip() == f"sockspec measure: --json {tmp_path}: is a directory"


def test_the_json_replaces_a_file_atomically_and_keeps_its_mode(tmp_path):
    out = tmp_path / "m.json"
    out.write_text("old")
    out.chmod(0o640)
    with ScriptedServer(echo) as address:
        assert main(["throughput", str(address), "--bytes", "1000", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["command"] == "throughput"
    assert out.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]   # no temporary left
