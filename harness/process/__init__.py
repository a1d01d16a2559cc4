"""Process control for servers under test: start, readiness, output, stop, reaping.

Everything that starts or stops a server goes through here: control.py
(ServerProcess), readiness.py (accepting? whose listener?), output.py
(draining stdout/stderr), tree.py (which processes are the server's); client.py runs clients under test to completion with the
same process-group control (run_client).
"""

from sockspec.process.control import (
    _LIVE_SERVERS,
    LaunchSpec,
    ServerProcess,
    StopReport,
    describe_exit,
    stop_all,
)
from sockspec.process.output import LOG_FILE_CAP
from sockspec.process.readiness import tcp_port_listened, wait_until_accepting
from sockspec.process.tree import (
    TOKEN_ENV,
    ProcInfo,
    attribute_processes,
    become_subreaper,
    read_process_table,
)

__all__ = [
    "LOG_FILE_CAP", "TOKEN_ENV", "LaunchSpec", "ProcInfo", "ServerProcess", "StopReport",
    "_LIVE_SERVERS", "attribute_processes", "become_subreaper", "describe_exit",
    "read_process_table", "stop_all", "tcp_port_listened", "wait_until_accepting",
]
