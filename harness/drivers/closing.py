"""When the client's FIN goes out: kernel facts that keep one family's trigger out of another's.

A FIN sent together with (or right behind) the client's last bytes is the
half-close family's trigger. Scenarios of other families that end with the
client's FIN send it only once the server has read everything and answered
it, and they prove that from the kernel instead of guessing with a pause:

- ``wait_until_echo_written``: every byte of an echo has been written back by
  the server (it is in our receive queue, or in its send queue: sock_diag over
  TCP), so its last read is over and the FIN that follows arrives alone.
- ``held_server``: the half-close scenarios themselves need the opposite over
  a Unix stream, which has no segment to carry data and FIN together: the
  server is stopped (SIGSTOP, every thread seen stopped) while the client
  sends its data and its FIN, so its first read finds the FIN already behind
  the data, as one TCP segment carrying both would.
- ``connect_with_receive_buffer``: SO_RCVBUF fixed before connect(), so the
  window is small from the handshake on and part of a response must still wait
  in the server's send queue while the client does not read.
"""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sockspec.drivers.peer import peer_socket, queued_on
from sockspec.errors import SockspecError
from sockspec.transport import Address, _connect_error, open_socket

# No progress for this long: the server waits for room in our receive buffer
# before it writes more, so we read what is queued (its answer is not judged
# by arrival time, only by the end of the stream).
ECHO_STALL_S = 0.2
POLL_S = 0.001
STOPPED_STATES = ("T", "t", "Z", "X")
_POLL_ENDED = select.POLLRDHUP | select.POLLHUP | select.POLLERR


def connect_with_receive_buffer(address: Address, timeout: float, size: int) -> socket.socket:
    """Connect with SO_RCVBUF set to ``size`` first (the kernel doubles it): the receive
    window stays small from the handshake on and autotuning never grows it."""
    sock = open_socket(address)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        sock.settimeout(timeout)
        sock.connect(address.sockaddr)
        return sock
    except BaseException as exc:
        sock.close()
        raise _connect_error(address, timeout, exc) from exc


@dataclass(frozen=True)
class EchoWritten:
    """How much of an echo the server had written when we stopped waiting."""

    written: int        # bytes the server wrote back (read by us, queued, or in its queue)
    read_early: bytes   # what we had to read for it to go on (its buffers were full)
    how: str            # "complete", "ended" (the server ended the stream) or "timeout"


def written_back(sock: socket.socket, read_so_far: int) -> int:
    """Bytes the server wrote to this connection. Unix: what we read plus what waits in
    our receive queue. TCP: its own count, tcpi_bytes_acked + (write_seq - snd_una),
    through sock_diag: our queue would count twice the bytes we hold but have not
    acknowledged yet (delayed ACK)."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return read_so_far + queued_on(sock)
    written = peer_socket(sock).written
    if written is None:
        raise SockspecError("the kernel did not report the server's tcp_info")
    return written


def wait_until_echo_written(sock: socket.socket, total: int, timeout: float) -> EchoWritten:
    """Wait until the server has written back all ``total`` bytes, reading only what it
    needs to go on; stop early if it ends the stream, at ``timeout`` at the latest.

    An echo server writes a chunk back only after reading it, so once everything is
    written its reads of our data are over: a FIN sent then arrives alone.
    """
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN | select.POLLRDHUP)
    read = bytearray()
    started = time.monotonic()
    last, last_change = -1, started
    while True:
        try:
            written = written_back(sock, len(read))
        except SockspecError:  # its socket is gone: it closed
            return EchoWritten(len(read) + queued_on(sock), bytes(read), "ended")
        if written >= total:
            return EchoWritten(written, bytes(read), "complete")
        if any(events & _POLL_ENDED for _, events in poller.poll(0)):
            return EchoWritten(written, bytes(read), "ended")
        now = time.monotonic()
        if now - started > timeout:
            return EchoWritten(written, bytes(read), "timeout")
        if written != last:
            last, last_change = written, now
        elif now - last_change > ECHO_STALL_S and (queued := queued_on(sock)):
            read += sock.recv(queued)  # its send() waits for room: make some
            last_change = now
        time.sleep(POLL_S)


@contextmanager
def held_server(server, timeout: float) -> Iterator[bool]:
    """Keep the server's processes stopped (SIGSTOP) inside the block; yields False, and
    stops nothing, for a server the harness does not control (``--connect``)."""
    if server.managed_process is None:
        yield False
        return
    process = server.process
    process.pause()
    try:
        _wait_all_stopped(process.group_pids(), timeout)
        yield True
    finally:
        process.resume()


def _wait_all_stopped(pids: list[int], timeout: float) -> None:
    """Until every thread of ``pids`` is stopped: SIGSTOP is delivered asynchronously,
    and a thread busy on another CPU could still read while it is on its way."""
    deadline = time.monotonic() + timeout
    while (running := _running_threads(pids)) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    if running:
        raise SockspecError(f"the server's threads {running} did not stop within {timeout:g} s "
                            "of SIGSTOP")


def _running_threads(pids: list[int]) -> list[int]:
    running = []
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue  # gone
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as stat:
                    state = stat.read().rpartition(")")[2].split()[0]
            except (OSError, IndexError):
                continue
            if state not in STOPPED_STATES:
                running.append(int(tid))
    return running

