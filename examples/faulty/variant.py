"""How a faulty variant in this folder runs: its defect on the server of one protocol.

Each variant here is a defect of the textbook server itself (accepting, threads,
closing, sending), the same for every protocol: a subclass of ``TextbookServer``
(examples/common/textbook_server.py) that overrides ONE method. ``run(Defect)``
puts it on top of the server of the protocol the command line names:

    python3 examples/faulty/<defect>.py --protocol kv|frames -h HOST -p PORT   (or -u PATH)

The class that runs is ``class Faulty(Defect, KVServer)`` (or ``FramesServer``):
the defect's method comes first, its ``super()`` is the protocol's server.
Defects that belong to one protocol (its framing or commands) stay in
examples/<protocol>/faulty/.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "common"))

from example_protocols import SERVER_CLASSES, protocol_module  # noqa: E402
from textbook_server import (  # noqa: E402,F401 (what the variants build on)
    IDLE_TIMEOUT,
    HangUp,
    TextbookServer,
    ip_family,
    set_io_timeouts,
)


def run(defect: type[TextbookServer], argv: list[str] | None = None) -> int:
    """Run ``defect`` on the server of ``--protocol``; the other options are the server's."""
    protocol, server, rest = protocol_module("server", argv)
    faulty = type(defect.__name__, (defect, getattr(server, SERVER_CLASSES[protocol])), {})
    return server.main(rest, server_class=faulty)
