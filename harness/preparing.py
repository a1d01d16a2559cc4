"""The harness's own file work: a failure there is the harness's trouble, not the program's.

Writing a document root, a sparse 2 GiB file or a client's input file can fail
on a full or read-only /tmp. That says nothing about the server or client
under test, so it is raised as HarnessError (the item is ``error``, with no fix
hint blaming the program), never as the program's failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sockspec.errors import HarnessError

__all__ = ["preparing", "write_file", "write_sparse_file"]


@contextmanager
def preparing(what: str) -> Iterator[None]:
    """Turn an OSError inside into HarnessError("the harness could not <what>: <reason>")."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise HarnessError(f"the harness could not {what}: {reason}") from exc


def write_file(path: Path, data: bytes, what: str = "write the file") -> Path:
    """``data`` into ``path`` (parents made); HarnessError naming the path if it fails."""
    with preparing(f"{what} {path}"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return path


def write_sparse_file(path: Path, size: int, marker: bytes,
                      what: str = "write the sparse file") -> Path:
    """A file of ``size`` bytes, all holes (zeros, no disk space) but ``marker`` at its end."""
    with preparing(f"{what} {path}"):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.truncate(size - len(marker))
            f.seek(size - len(marker))
            f.write(marker)
    return path
