"""The [[client]] part of the targets TOML contract: parsing, validation, templates."""

import re
import sys
from pathlib import Path

import pytest

from sockspec.errors import TargetConfigError, UsageError
from sockspec.targets.clients import (
    adhoc_client_target,
    builtin_client_targets,
    client_placeholder_values,
    load_target_file,
    render_client_argv,
)
from sockspec.targets.servers import load_targets

GOOD = """
[[server]]
name = "srv"
profile = "echo"
tcp = ["srv", "-p", "{port}"]

[[client]]
name = "my_echo_client"
profile = "echo"
tcp  = ["build/client", "{hostport}", "{in}"]
unix = ["build/client", "-u", "{path}", "{in}"]
ipv6 = true
colour = "ignored: unknown keys are allowed"

[[client]]
name = "fetcher"
profile = "http"
tcp = ["curl", "-sS", "--max-time", "5", "-o", "{out}", "{url}"]
unix = ["curl", "-sS", "--unix-socket", "{path}", "-o", "{out}", "{url}"]
output = "file"
success_status = 0
failure_status = [7, 18, 28, 52, 56]
timeout_s = 5
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "targets.toml"
    path.write_text(text)
    return path


def test_file_with_servers_and_clients_loads_both(tmp_path):
    declared = load_target_file(write(tmp_path, GOOD))
    assert [s.name for s in declared.servers] == ["srv"]
    echo, http = declared.clients
    assert echo.profile == "echo" and echo.transports() == ["tcp", "tcp6", "unix"]
    assert echo.output == "stdout" and echo.success_status == 0
    assert echo.failure_status is None and echo.timeout_s == 10.0
    assert echo.cwd == str(tmp_path.resolve()) and echo.kind == "client"
    assert http.output == "file" and http.failure_status == (7, 18, 28, 52, 56)
    assert http.timeout_s == 5.0 and http.transports() == ["tcp", "unix"]


def test_old_api_still_reads_only_servers(tmp_path):
    assert [t.name for t in load_targets(write(tmp_path, GOOD))] == ["srv"]


def test_file_with_only_clients_loads(tmp_path):
    text = '[[client]]\nname = "c"\nprofile = "echo"\ntcp = ["c", "{port}"]\n'
    declared = load_target_file(write(tmp_path, text))
    assert declared.servers == [] and [c.name for c in declared.clients] == ["c"]


def test_failure_status_rules():
    (echo, http) = builtin_client_targets().values()
    assert echo.is_failure_status(1) and not echo.is_failure_status(0)
    assert not echo.is_failure_status(2) and not echo.is_failure_status(-9)
    assert not echo.is_failure_status(None)


def test_nonzero_means_any_status_but_success(tmp_path):
    text = '[[client]]\nname = "c"\nprofile = "echo"\ntcp = ["c", "{port}"]\n'
    (client,) = load_target_file(write(tmp_path, text)).clients
    assert client.is_failure_status(1) and client.is_failure_status(255)
    assert not client.is_failure_status(0) and not client.is_failure_status(-11)
    assert client.describe_failure_statuses() == "any status other than 0"


def test_render_fills_client_placeholders_and_leaves_other_braces():
    tcp = client_placeholder_values(host="::1", port=2000, input_path="/i", output_path="/o",
                                    url_path="/a/b")
    argv = render_client_argv(("{host}", "{port}", "{hostport}", "{in}", "{out}", "{url}",
                               "{url_path}", "{json}"), tcp)
    assert argv == ["::1", "2000", "[::1]:2000", "/i", "/o", "http://[::1]:2000/a/b", "/a/b",
                    "{json}"]
    unix = client_placeholder_values(path="/tmp/s", url_path="/x")
    assert render_client_argv(("{path}", "{url}", "{hostport}"), unix) == \
        ["/tmp/s", "http://localhost/x", ""]


def test_builtin_reference_clients_use_this_python():
    targets = builtin_client_targets()
    assert set(targets) == {"reference-echo-client", "reference-http-client"}
    for target in targets.values():
        assert target.tcp[0] == sys.executable
        assert target.transports() == ["tcp", "tcp6", "unix"]
        assert target.failure_status == (1,) and target.output == "stdout"


BASE = '[[client]]\nname = "a"\nprofile = "echo"\n'


@pytest.mark.parametrize(
    "text, message",
    [
        ('[[client]]\nprofile = "echo"\ntcp = ["a", "{port}"]', "missing key 'name'"),
        ('[[client]]\nname = "a"\nprofile = "ftp"\ntcp = ["a", "{port}"]', "key 'profile'"),
        (BASE, "needs a 'tcp' or a 'unix' command"),
        (BASE + 'tcp = "a {port}"', "key 'tcp' must be"),
        (BASE + 'tcp = ["a"]', "never mentions {port} or {hostport} or {url}"),
        (BASE + 'unix = ["a"]', "never mentions {path}"),
        ('[[client]]\nname = "a"\nprofile = "http"\ntcp = ["a", "{port}"]', "{url_path} or {url}"),
        (BASE + 'tcp = ["a", "{port}"]\noutput = "pipe"', "key 'output'"),
        (BASE + 'tcp = ["a", "{port}"]\noutput = "file"', "needs {out}"),
        (BASE + 'tcp = ["a", "{port}"]\nsuccess_status = -1', "key 'success_status'"),
        (BASE + 'tcp = ["a", "{port}"]\nfailure_status = []', "key 'failure_status'"),
        (BASE + 'tcp = ["a", "{port}"]\nfailure_status = "some"', "key 'failure_status'"),
        (BASE + 'tcp = ["a", "{port}"]\nfailure_status = [0, 1]', "contains the success status"),
        (BASE + 'tcp = ["a", "{port}"]\ntimeout_s = 0', "key 'timeout_s'"),
        (BASE + 'tcp = ["a", "{port}"]\ntimeout_s = "10"', "key 'timeout_s'"),
        (BASE + 'tcp = ["a", "{port}"]\nipv6 = true', "{host}, {hostport} or {url}"),
        (BASE + 'tcp = ["a", "{port}"]\n' + BASE + 'tcp = ["a", "{port}"]', "used twice"),
        ('[[server]]\nname = "a"\nprofile = "echo"\ntcp = ["a", "{port}"]\n'
         + BASE + 'tcp = ["a", "{port}"]', "used twice"),
        ("client = 3", "array of tables"),
        ("", "no [[server]] or [[client]] tables"),
    ],
)
def test_bad_client_tables_name_file_table_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(TargetConfigError) as caught:
        load_target_file(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_client_cmd_is_a_client_table_with_the_defaults():
    tcp = adhoc_client_target("./cli {hostport} --in {in}", "echo", "/work")
    assert (tcp.name, tcp.source, tcp.cwd) == ("client-cmd", "--client-cmd", "/work")
    assert tcp.tcp == ("./cli", "{hostport}", "--in", "{in}") and tcp.unix is None
    assert tcp.transports() == ["tcp", "tcp6"] and tcp.output == "stdout"
    assert tcp.is_failure_status(3) and not tcp.is_failure_status(0)
    unix = adhoc_client_target("./cli -u {path} -o {out} {url_path}", "http", ".")
    assert unix.transports() == ["unix"] and unix.output == "file"
    assert adhoc_client_target("./cli -p {port}", "echo", ".").transports() == ["tcp"]


@pytest.mark.parametrize("command, profile, message", [
    ("./cli {hostport}", None, "needs --profile"),
    ("", "echo", "is empty"),
    ("./cli", "echo", "never mentions"),
    ("./cli {hostport}", "http", "{url_path} or {url}"),
])
def test_bad_client_cmd_is_a_usage_error(command, profile, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        adhoc_client_target(command, profile, ".")
