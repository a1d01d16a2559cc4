#!/usr/bin/env python3
"""The built wheel, installed as a user installs it (``tox -e wheel``).

    python scripts/dev/check_wheel.py [--keep DIR]

1. builds the wheel of this checkout (``pip wheel --no-deps``);
2. checks its top-level names: exactly ``sockspec`` (and its .dist-info), no
   test-only program (fixtures/faulty, fixtures/hostile);
3. makes a fresh venv, installs PyPI's ``fixtures`` package into it first, then
   the wheel, and checks that ``fixtures.Fixture`` still works;
4. runs ``sockspec run --transport tcp basic`` from an unrelated directory;
5. uninstalls sockspec and checks that ``fixtures.Fixture`` still works.

Needs PyPI (or a mirror pip is configured for). Exit 0 when all holds; otherwise
one line on stderr saying what did not.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
FIXTURE_PROBE = "import fixtures; assert issubclass(fixtures.Fixture, object); " \
                "print(fixtures.Fixture.__module__)"


class CheckFailed(Exception):
    pass


def sh(args: list[str], cwd: Path, timeout: float = 900) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise CheckFailed(f"{' '.join(args)} exited {done.returncode}: "
                          f"{(done.stdout + done.stderr).strip()[-1500:]}")
    return done.stdout


def top_level_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name.split("/", 1)[0] for name in archive.namelist()}


def check(work: Path) -> None:
    # Built from a clean copy: pip builds in the source tree (build/, *.egg-info), and
    # a stale build/ of the checkout must neither leak into the wheel nor be left behind.
    source = work / "source"
    shutil.copytree(PROJECT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".tox", "build", "dist", "*.egg-info", "__pycache__", "out"))
    dist = work / "dist"
    sh([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)],
       work)
    (wheel,) = dist.glob("sockspec-*.whl")
    names = top_level_names(wheel)
    expected = {"sockspec", wheel.name.split("-py3")[0] + ".dist-info"}
    if names != expected:
        raise CheckFailed(f"wheel top-level names {sorted(names)}, wanted {sorted(expected)}")
    with zipfile.ZipFile(wheel) as archive:
        listed = archive.namelist()
    stray = [n for n in listed if "faulty/" in n or "hostile/" in n]
    if stray:
        raise CheckFailed(f"test-only programs in the wheel: {stray[:3]}")
    for wanted in ("sockspec/scenarios/basic.py", "sockspec/reports/templates/report.html.j2",
                   "sockspec/plugin/__init__.py", "sockspec/protocol/declarations/echo.toml",
                   "sockspec/protocol/declarations/http.toml"):
        if wanted not in listed:
            raise CheckFailed(f"{wanted} missing from the wheel")
    venv = work / "venv"
    sh([sys.executable, "-m", "venv", str(venv)], work)
    python = str(venv / "bin" / "python")
    sh([python, "-m", "pip", "install", "-q", "fixtures"], work)
    before = sh([python, "-c", FIXTURE_PROBE], work).strip()
    sh([python, "-m", "pip", "install", "-q", str(wheel)], work)
    after = sh([python, "-c", FIXTURE_PROBE], work).strip()
    if after != before:
        raise CheckFailed(f"fixtures.Fixture comes from {after!r} after installing sockspec, "
                          f"{before!r} before")
    elsewhere = work / "unrelated"
    elsewhere.mkdir()
    out = sh([str(venv / "bin" / "sockspec"), "run", "--transport", "tcp", "basic"], elsewhere)
    if "passed" not in out:
        raise CheckFailed(f"sockspec run printed no pass: {out[-500:]}")
    sh([python, "-m", "pip", "uninstall", "-q", "-y", "sockspec"], work)
    sh([python, "-c", FIXTURE_PROBE], work)
    print(f"ok: {wheel.name}: top-level {sorted(names)}; fixtures.Fixture intact before, "
          "with and after sockspec; sockspec run --transport tcp basic passed from "
          f"{elsewhere}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir)")
    args = parser.parse_args()
    try:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            check(args.keep)
        else:
            with tempfile.TemporaryDirectory(prefix="sockspec-wheel-") as tmp:
                check(Path(tmp))
    except (CheckFailed, subprocess.TimeoutExpired) as exc:
        print(f"check_wheel: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
