"""Output files (results JSON, HTML report, JUnit XML, benchmark JSON): checked up front,
written into what the user named, replacing nothing else.

- A regular file or a new path is written atomically: a temporary file
  ``.NAME.PID.XXXX.tmp`` next to it, renamed over it once complete (a reader
  never sees half a file). The new file keeps the old one's permission bits.
- A symbolic link is followed: its target is written (atomically when the
  target is a regular file or does not exist yet); the link stays.
- A character device (``/dev/null``, a terminal) or a FIFO is written straight
  into, opened without creating or truncating anything; so is a path under
  ``/dev/fd``, ``/dev/std*`` or ``/proc`` (appended to when it is a regular
  file, as ``>>`` would).
- A directory, a block device or a socket is refused.

``check_outputs`` runs before any work: every path must be writable and
distinct from the others (identical character devices may repeat: two reports
into ``/dev/null`` harm nothing). A write that fails late raises OutputError
after removing its temporary file.

Knows nothing of the harness (like sockspec.reports.results): errors are OutputError,
which the callers turn into one ``sockspec: ...`` line.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

# Paths that are views of open descriptors or of the kernel: never renamed over.
STREAM_PREFIXES = ("/dev/fd/", "/dev/stdout", "/dev/stderr", "/proc/")


class OutputError(Exception):
    """An output that cannot be written: a one-line message and the exit status.

    ``exit_status`` is 2 when found before the run (a usage error), 1 when a
    write failed at the end.
    """

    def __init__(self, message: str, exit_status: int = 1) -> None:
        super().__init__(message)
        self.exit_status = exit_status


def _describe(label: str | None, path: str | os.PathLike) -> str:
    return f"{label} {path}" if label else str(path)


def _is_stream_path(absolute: str) -> bool:
    return absolute.startswith(STREAM_PREFIXES)


def _stat(path: str) -> os.stat_result | None:
    """stat() following links; None when nothing is there (or a dangling link)."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file, character device or FIFO"


def _cannot_create_reason(directory: str) -> str | None:
    """Why no file can be created in ``directory`` (existing), or None."""
    if not os.path.isdir(directory):
        return f"{directory} is not a directory"
    if os.access(directory, os.W_OK | os.X_OK):
        return None
    try:
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            return f"{directory} is on a read-only file system"
    except OSError:
        pass
    return f"no permission to create files in {directory}"


def _nearest_existing(directory: str) -> str:
    while not os.path.lexists(directory):
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return os.path.realpath(directory)


def check_output(path: str | os.PathLike, label: str | None = None) -> tuple:
    """Raise OutputError (exit 2) when ``path`` cannot take an output; else its identity
    (a key that is equal for two paths naming the same file)."""
    absolute = os.path.abspath(path)
    where = _describe(label, path)
    info = _stat(absolute)
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise OutputError(f"{where}: is a directory", 2)
    if _is_stream_path(absolute):
        if info is None:
            raise OutputError(f"{where}: no such file", 2)
        if not os.access(absolute, os.W_OK):
            raise OutputError(f"{where}: not writable", 2)
        return ("chr", info.st_rdev) if stat.S_ISCHR(info.st_mode) else \
            ("file", info.st_dev, info.st_ino)
    if info is not None and not stat.S_ISREG(info.st_mode):
        if stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode):
            if not os.access(absolute, os.W_OK):
                raise OutputError(f"{where}: not writable", 2)
            return ("chr", info.st_rdev) if stat.S_ISCHR(info.st_mode) else \
                ("file", info.st_dev, info.st_ino)
        raise OutputError(f"{where}: is {_kind(info.st_mode)}", 2)
    real = os.path.realpath(absolute)
    parent = os.path.dirname(real)
    existing = _nearest_existing(parent)
    reason = _cannot_create_reason(existing)
    if reason:
        raise OutputError(f"{where}: {reason}", 2)
    if info is not None:
        return ("file", info.st_dev, info.st_ino)
    return ("path", real)


def check_outputs(outputs: Iterable[tuple[str, str | os.PathLike | None]],
                  inputs: Iterable[str | os.PathLike | None] = ()) -> None:
    """Check every (label, path) output before any work; OutputError (exit 2) names the
    first path that cannot be written, or two outputs that are one file, or an output
    that is one of ``inputs`` (files the command reads)."""
    seen: dict[tuple, str] = {}
    for path in inputs:
        info = _stat(os.path.abspath(path)) if path else None
        if info is not None:
            seen[("file", info.st_dev, info.st_ino)] = f"the input {path}"
    for label, path in outputs:
        if not path:
            continue
        key = check_output(path, label)
        if key in seen and key[0] != "chr":
            raise OutputError(f"{_describe(label, path)}: the same file as {seen[key]}", 2)
        seen.setdefault(key, _describe(label, path))


def _umask() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _own_descriptor(absolute: str) -> int | None:
    """The descriptor of this process that ``absolute`` names (/dev/stdout, /dev/fd/N,
    /proc/self/fd/N), or None."""
    named = {"/dev/stdout": "1", "/dev/stderr": "2"}.get(absolute)
    for prefix in ("/dev/fd/", "/proc/self/fd/", f"/proc/{os.getpid()}/fd/"):
        if absolute.startswith(prefix):
            named = absolute[len(prefix):]
    return int(named) if named and named.isdigit() else None


def _write_stream(path: str, data: bytes) -> None:
    own = _own_descriptor(path)
    if own is not None:
        # Through the descriptor itself: its offset is shared with what this process
        # already wrote there (``--json /dev/stdout > file`` keeps pytest's lines).
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
        _write_all(own, data)
        return
    # No O_CREAT: a device that vanished is an error, not a new regular file in /dev.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def _write_replacing(path: str, data: bytes, old: os.stat_result | None) -> None:
    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp",
                               dir=target.parent)
    try:
        try:
            if old is not None:
                os.fchmod(fd, stat.S_IMODE(old.st_mode) & 0o777)
                if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
                    try:
                        os.fchown(fd, old.st_uid, old.st_gid)
                    except OSError:
                        pass
            else:
                os.fchmod(fd, 0o666 & ~_umask())
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_output(path: str | os.PathLike, data: str | bytes, label: str | None = None) -> None:
    """Write ``data`` to ``path`` as the module docstring says; OutputError (exit 1)
    with one line when it fails, leaving no temporary file."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    absolute = os.path.abspath(path)
    where = _describe(label, path)
    try:
        info = _stat(absolute)
        if info is not None and not stat.S_ISREG(info.st_mode):
            if not (stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode)):
                raise OutputError(f"cannot write {where}: it is {_kind(info.st_mode)}")
            _write_stream(absolute, payload)
        elif _is_stream_path(absolute):
            _write_stream(absolute, payload)
        else:
            _write_replacing(absolute, payload, info)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OutputError(f"cannot write {where}: {reason}") from None


def write_each(writes: Iterable[Callable[[], None]]) -> list[str]:
    """Call every writer even when one fails; the failures' one-line messages."""
    problems = []
    for write in writes:
        try:
            write()
        except OutputError as exc:
            problems.append(str(exc))
    return problems
