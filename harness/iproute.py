"""Running iproute2's `ip` for the network namespaces the harness creates itself."""

from __future__ import annotations

import subprocess

IP_COMMAND_TIMEOUT_S = 10.0


def run_ip(*args: str, error: type[Exception]) -> None:
    """`ip ARGS`, bounded in time; a failure raises ``error`` with ip's last line."""
    try:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True,
                       timeout=IP_COMMAND_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout or "").strip().splitlines()
        raise error(f"ip {' '.join(args)}: {detail[-1] if detail else exc}") from None
    except subprocess.TimeoutExpired:
        raise error(f"ip {' '.join(args)} took more than {IP_COMMAND_TIMEOUT_S:g} s") from None
