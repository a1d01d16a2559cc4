"""Draining a server's stdout and stderr so it never blocks, without filling the disk."""


from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from sockspec.errors import ServerStartError

LOG_FILE_CAP = 1024 * 1024      # bytes per stream kept in its log file
TAIL_KEEP = 64 * 1024           # bytes per stream kept in memory for *_tail()
READ_CHUNK = 1024 * 1024        # a pipe holds 64 KiB by default; one read drains it


class OutputDrain:
    """Reads one pipe until every writer closed it, so the server never blocks on it.

    The first LOG_FILE_CAP bytes go to the log file, the last TAIL_KEEP stay in
    memory; the rest is read, counted and dropped. ``observer``, if given, sees
    every chunk in order, from the drain thread (a client's judged output is
    hashed that way without being kept).
    """

    def __init__(self, pipe: BinaryIO, log_file: BinaryIO, label: str,
                 observer: Callable[[bytes], None] | None = None) -> None:
        self.path = Path(log_file.name)
        self._observer = observer
        self.total_bytes = 0
        self._pipe, self._file, self._file_bytes = pipe, log_file, 0
        self._tail = bytearray()
        self._tail_lock = threading.Lock()
        self._finishing = threading.Event()
        self._thread = threading.Thread(target=self._run, name=label, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        fd = self._pipe.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        reads_after_finish = 64  # a leftover writer must not keep us here forever
        try:
            while reads_after_finish > 0:
                if self._finishing.is_set():
                    reads_after_finish -= 1
                if not poller.poll(0 if self._finishing.is_set() else 100):
                    if self._finishing.is_set():
                        break
                    continue
                chunk = os.read(fd, READ_CHUNK)
                if not chunk:
                    break
                self._keep(chunk)
        except OSError:
            pass
        finally:
            dropped = self.total_bytes - self._file_bytes
            if dropped:
                self._file.write(f"\n[... sockspec: {dropped} more bytes not kept; log capped "
                                 f"at {LOG_FILE_CAP} bytes ...]\n".encode())
            self._file.close()
            self._pipe.close()

    def _keep(self, chunk: bytes) -> None:
        if self._observer is not None:
            self._observer(chunk)
        room = LOG_FILE_CAP - self._file_bytes
        if room > 0:
            self._file.write(chunk[:room])
            self._file.flush()
            self._file_bytes += min(room, len(chunk))
        with self._tail_lock:
            self.total_bytes += len(chunk)
            if len(chunk) >= TAIL_KEEP:
                self._tail[:] = chunk[-TAIL_KEEP:]
            else:
                self._tail += chunk
                del self._tail[:-TAIL_KEEP]

    def tail(self, max_bytes: int) -> str:
        with self._tail_lock:
            data = bytes(self._tail[-max_bytes:]) if max_bytes > 0 else b""
            dropped = self.total_bytes - len(data)
        text = data.decode("utf-8", "replace")
        return f"[... {dropped} bytes not kept ...]\n{text}" if dropped else text

    def finish(self, deadline: float) -> None:
        self._finishing.set()
        self._thread.join(timeout=max(0.0, deadline - time.monotonic()))

    @property
    def finished(self) -> bool:
        """True once every byte was read (all writers closed the pipe) or the drain gave up."""
        return not self._thread.is_alive()



def open_logs(log_dir: Path, name: str) -> tuple[BinaryIO, BinaryIO]:
    """Open <name>.stdout.log / .stderr.log; a restart under the same name gets <name>.2..."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "server"
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, 10_000):
            stem = safe if attempt == 1 else f"{safe}.{attempt}"
            try:
                out = open(log_dir / f"{stem}.stdout.log", "xb")  # the drain closes it
            except FileExistsError:
                continue
            return out, open(log_dir / f"{stem}.stderr.log", "wb")
    except OSError as exc:
        raise ServerStartError(f"{name}: cannot write logs in {log_dir}: {exc.strerror}") from None
    raise ServerStartError(f"{name}: too many log files named {safe} in {log_dir}")

