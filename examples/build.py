"""Build the example C servers: examples/kv/server.c and examples/frames/server.c.

Each is linked with examples/common/textbook_server.c (the accept loop, threads,
signals and command line they share).

    python3 examples/build.py [--out DIR]

Writes DIR/kv-server and DIR/frames-server (DIR defaults to examples/build/, which
git ignores; examples/*/targets-c.toml run the binaries from there) and prints one
line. Uses $CC, else cc; without a C compiler it prints "skipped: no C compiler"
and exits 0 (the C targets cannot run then). A failed build exits 1 with the
compiler's messages.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
SHARED = EXAMPLES / "common" / "textbook_server.c"
PROGRAMS = {"kv-server": [EXAMPLES / "kv" / "server.c", SHARED],
            "frames-server": [EXAMPLES / "frames" / "server.c", SHARED]}
FLAGS = ["-O2", "-Wall", "-Wextra", "-pthread"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=EXAMPLES / "build", metavar="DIR",
                        help="where the binaries go (default: examples/build)")
    args = parser.parse_args(argv)
    compiler = shutil.which(os.environ.get("CC") or "cc")
    if compiler is None:
        print("skipped: no C compiler")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    built = []
    for name, sources in PROGRAMS.items():
        command = [compiler, *FLAGS, "-o", str(args.out / name), *map(str, sources)]
        result = subprocess.run(command, capture_output=True, text=True)
        sys.stderr.write(result.stdout + result.stderr)  # warnings, if any, are shown
        if result.returncode != 0:
            print(f"build.py: {' '.join(command)} failed (status {result.returncode})",
                  file=sys.stderr)
            return 1
        built.append(str(args.out / name))
    print(f"built {' '.join(built)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
