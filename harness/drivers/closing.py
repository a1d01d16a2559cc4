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
- ``settle_unix_end``: over a Unix stream, EOF arrives with the server's
  shutdown(SHUT_WR) but the ECONNRESET of a close() with unread input only when
  its last descriptor goes; an end seen as EOF is read again once the kernel
  has released the server's socket.
"""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sockspec.drivers.peer import peer_socket, queued_on, unix_peer_inode, wait_for
from sockspec.errors import SockspecError
from sockspec.transport import Address, StreamEnd, _connect_error, open_socket

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


def settle_unix_end(sock: socket.socket, end: StreamEnd, seconds: float) -> tuple[StreamEnd, str]:
    """The end of a Unix stream, judged once the server's socket is released.

    A server's shutdown(SHUT_WR) gives us EOF at once; its close() with unread
    input sets ECONNRESET on our socket only when its last descriptor goes
    (net/unix/af_unix.c, unix_release_sock), and a client that read EOF in between
    would call the end FIN: a server the scheduler holds between the two calls
    passed. So after EOF: our FIN, if not sent yet (a server that reads until
    EOF before it closes, as it should, now closes); a wait of up to ``seconds``
    until unix_diag no longer shows the server's socket; one more read, which
    returns the pending ECONNRESET if there is one. Other ends, and TCP (whose RST
    comes by itself), are returned as they are. Also returns words for the evidence.
    """
    if sock.family != socket.AF_UNIX or end is not StreamEnd.FIN:
        return end, "not needed"
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # sent before, or the server is gone already: either way nothing to add
    began = time.monotonic()
    try:
        released = wait_for(lambda: unix_peer_inode(sock) == 0, seconds)
    except (OSError, SockspecError) as exc:
        return end, f"not checked: {exc}"
    took = time.monotonic() - began
    sock.setblocking(False)
    try:
        again = sock.recv(1)
    except ConnectionResetError:
        return StreamEnd.RST, f"after EOF, ECONNRESET once its socket was released ({took:.3f} s)"
    except OSError as exc:
        return end, f"a read after EOF failed: {exc}"
    if again:
        return end, "data after EOF (not judged here)"
    if not released:
        return end, f"its socket was still open {seconds:g} s after EOF and our FIN"
    return end, f"released {took:.3f} s after EOF, with no ECONNRESET pending"


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

