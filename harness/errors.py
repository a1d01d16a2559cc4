"""One exception type per failure kind a user can act on.

Each carries a message that reads as one line at the CLI boundary, where
`SockspecError` is caught and printed as ``sockspec: <message>`` with exit 2
(usage/config) or 1 (the thing under test misbehaved).
"""

from __future__ import annotations


class SockspecError(Exception):
    """Base: a failure with a one-line, user-facing message."""

    exit_status = 1


class UsageError(SockspecError):
    """Bad command-line option or argument."""

    exit_status = 2


class TargetConfigError(SockspecError):
    """A targets TOML file, table or key is missing or wrong."""

    exit_status = 2


class AddressError(SockspecError):
    """An address that cannot be used (malformed, non-loopback, Unix path too long)."""

    exit_status = 2


class ConnectError(SockspecError):
    """connect() failed: refused, timed out, unreachable, no such socket file."""


class PeerError(SockspecError):
    """The peer reset, closed early, or did not answer in time."""


class ServerStartError(SockspecError):
    """A server under test could not be started or never became ready."""


class ClientStartError(SockspecError):
    """A client under test could not be started at all (missing program, bad directory)."""


class HarnessError(SockspecError):
    """The harness itself could not do its part (disk full, fd limit, it was stopped).

    Never the fault of the program under test: an item that raises it is recorded
    as ``error`` with this message, not ``failed``, and no fix hint blames the
    program.
    """
