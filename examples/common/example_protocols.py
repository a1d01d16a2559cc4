"""``--protocol NAME``: which example a shared faulty variant runs on.

examples/faulty/ and examples/faulty_clients/ hold defects that are the same for
every example protocol; each is run with ``--protocol kv`` or ``--protocol
frames`` before the program's own options, and loads examples/NAME/server.py
or examples/NAME/client.py.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parent.parent
# Each example protocol and the class of its server.py.
SERVER_CLASSES = {"kv": "KVServer", "frames": "FramesServer"}


def protocol_module(module: str, argv: list[str] | None = None
                    ) -> tuple[str, ModuleType, list[str]]:
    """(protocol, examples/PROTOCOL/MODULE.py imported, the other options) from
    ``--protocol PROTOCOL`` in ``argv`` (default: the command line)."""
    parser = argparse.ArgumentParser(add_help=False, usage=f"%(prog)s --protocol "
                                     f"{{{','.join(SERVER_CLASSES)}}} {module.upper()}-OPTIONS...")
    parser.add_argument("--protocol", required=True, choices=sorted(SERVER_CLASSES))
    args, rest = parser.parse_known_args(argv)
    sys.path.insert(0, str(EXAMPLES / args.protocol))
    return args.protocol, importlib.import_module(module), rest
