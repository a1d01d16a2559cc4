"""The targets TOML contract: parsing, validation messages, templates."""

import sys
from pathlib import Path

import pytest

from sockspec.errors import TargetConfigError, UsageError
from sockspec.targets.servers import (
    adhoc_target,
    builtin_targets,
    load_targets,
    placeholder_values,
    render_argv,
)

GOOD = """
[[server]]
name = "my_echo"
profile = "echo"
tcp  = ["build/my_echo", "-h", "{host}", "-p", "{port}"]
unix = ["build/my_echo", "-u", "{path}"]
ipv6 = true
colour = "ignored: unknown keys are allowed"

[[server]]
name = "files"
profile = "http"
tcp = ["srv", "--listen", "{hostport}", "--root", "{root}"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "targets.toml"
    path.write_text(text)
    return path


def test_good_file_loads_with_transports_and_cwd(tmp_path):
    echo, http = load_targets(write(tmp_path, GOOD))
    assert echo.name == "my_echo" and echo.profile == "echo"
    assert echo.transports() == ["tcp", "tcp6", "unix"]
    assert http.transports() == ["tcp"]
    assert echo.cwd == str(tmp_path.resolve())


def test_render_fills_placeholders_and_leaves_other_braces():
    argv = render_argv(("x", "{host}:{port}", "{hostport}", "{json}", "{root}/a"),
                       placeholder_values(host="::1", port=2000, root="/r"))
    assert argv == ["x", "::1:2000", "[::1]:2000", "{json}", "/r/a"]


@pytest.mark.parametrize(
    "text, message",
    [
        ('[[server]]\nprofile = "echo"\ntcp = ["a", "{port}"]', "missing key 'name'"),
        ('[[server]]\nname = "a"\nprofile = "ftp"\ntcp = ["a", "{port}"]', "key 'profile'"),
        ('[[server]]\nname = "a"\nprofile = "echo"', "needs a 'tcp' or a 'unix' command"),
        ('[[server]]\nname = "a"\nprofile = "echo"\ntcp = "a {port}"', "key 'tcp' must be"),
        ('[[server]]\nname = "a"\nprofile = "echo"\ntcp = ["a"]', "never mentions {port}"),
        ('[[server]]\nname = "a"\nprofile = "echo"\nunix = ["a"]', "never mentions {path}"),
        ('[[server]]\nname = "a"\nprofile = "http"\ntcp = ["a", "{port}"]', "{root}"),
        ('[[server]]\nname = "a"\nprofile = "echo"\ntcp = ["a", "{port}"]\nipv6 = "yes"',
         "key 'ipv6'"),
        ('[[server]]\nname = "a"\nprofile = "echo"\ntcp = ["a", "{port}"]\nipv6 = true',
         "{host}"),
        ('[[server]]\nname = "a"\nprofile = "echo"\ntcp = ["a", "{port}"]\n'
         '[[server]]\nname = "a"\nprofile = "echo"\ntcp = ["a", "{port}"]', "used twice"),
        ("server = 3", "array of tables"),
        ("", "no [[server]] tables"),
        ("[[server]\n", "invalid TOML"),
    ],
)
def test_bad_files_name_file_table_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(TargetConfigError) as caught:
        load_targets(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(TargetConfigError, match="no such targets file"):
        load_targets(tmp_path / "absent.toml")


def test_builtin_reference_targets_use_this_python():
    targets = builtin_targets()
    assert set(targets) == {"reference-echo", "reference-http"}
    for target in targets.values():
        assert target.tcp[0] == sys.executable
        assert target.transports() == ["tcp", "tcp6", "unix"]


def test_adhoc_target_tcp_and_unix():
    tcp = adhoc_target("./srv -h {host} -p {port}", "echo", "/tmp")
    assert tcp.transports() == ["tcp", "tcp6"] and tcp.source == "--server-cmd"
    unix = adhoc_target("./srv -u {path}", "echo", "/tmp")
    assert unix.transports() == ["unix"]
    with pytest.raises(UsageError, match="--profile"):
        adhoc_target("./srv -p {port}", None, "/tmp")
    with pytest.raises(UsageError, match="never mentions"):
        adhoc_target("./srv", "echo", "/tmp")
