"""AdversaryServer: the harness plays the server, in a thread, to judge a client.

The listener is the reference server's (sockspec.reference.listener); each
accepted connection is served by sockspec.adversary.connection in its own
thread, as a Plan says. ``Listening`` bends the accept side: a full accept
queue, accepting late, or never.

Kernel facts this relies on (measured in shared/bench/RESULTS.md, section 6):
a TCP listener's accept queue holds backlog + 1 connections; a SYN beyond that
is dropped, and the client retransmits it after 1 s, 2 s, 3 s (linear while
net.ipv4.tcp_syn_linear_timeouts allows), so a connect() waits rather than
fails. A Unix listener whose queue is full fails a non-blocking connect() at
once with EAGAIN and blocks a blocking one until there is room.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from pathlib import Path

from sockspec.adversary.connection import ConnectionLog, serve_connection
from sockspec.adversary.plan import Listening, Plan
from sockspec.reference.listener import Listener, open_listener
from sockspec.transport import UNIX_PATH_MAX, Address, TcpAddress

MAX_CONNECTIONS = 8          # a client under test makes one; a few retries are fine
FILLER_CONNECT_TIMEOUT = 2.0
MAX_FILLERS = 64
ACCEPT_POLL_S = 0.05
JOIN_TIMEOUT_S = 5.0


class AdversaryServer:
    """One listening address, served as planned until stop()."""

    def __init__(self, address: Address, plan: Plan, listening: Listening | None = None) -> None:
        self.requested = address
        self.plan = plan
        self.listening = listening or Listening()
        self.started_at = 0.0
        self.accepting_since: float | None = None
        self.queue_filled_with = 0          # filler connections queued before the client
        self.queue_length: int | None = None  # TCP accept queue length once filled (/proc)
        self.refused = 0                    # connections beyond MAX_CONNECTIONS
        self._listener: Listener | None = None
        self._fillers: list[socket.socket] = []
        self._fillers_to_skip = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._logs: list[ConnectionLog] = []
        self._live: dict[int, socket.socket] = {}
        self._threads: list[threading.Thread] = []
        self._accept_thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Address:
        self._listener = open_listener(self.requested, self.listening.backlog)
        self.started_at = time.monotonic()
        try:
            if self.listening.fill_queue:
                self._fillers = fill_accept_queue(self._listener.address, self.listening.backlog)
                self.queue_filled_with = self._fillers_to_skip = len(self._fillers)
                if isinstance(self._listener.address, TcpAddress):
                    self.queue_length = tcp_accept_queue_length(self._listener.address)
            self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True,
                                                   name="adversary-accept")
            self._accept_thread.start()
        except BaseException:
            self.stop()
            raise
        return self._listener.address

    @property
    def address(self) -> Address:
        assert self._listener is not None, "start() first"
        return self._listener.address

    def stop(self) -> None:
        """Stop accepting, end every connection (bounded), close fillers and the listener."""
        self._stop.set()
        if self._accept_thread is not None:
            self._accept_thread.join(JOIN_TIMEOUT_S)
        with self._lock:
            live = list(self._live.values())
        for conn in live:
            try:
                conn.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv/send
            except OSError:
                pass
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for filler in self._fillers:
            filler.close()
        self._fillers.clear()
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> AdversaryServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- evidence --------------------------------------------------------------------

    @property
    def connections(self) -> list[ConnectionLog]:
        with self._lock:
            return list(self._logs)

    def problems(self) -> list[str]:
        """Declared protocols: the requests the declaration does not allow, one line each."""
        return [log.problem for log in self.connections if log.problem]

    def replies(self) -> list[bytes]:
        """Declared protocols: every reply payload sent whole, connection by connection."""
        return [reply for log in self.connections for reply in log.replies]

    def describe(self) -> str:
        """What the server did, for a verdict's evidence; times relative to start()."""
        lines = [f"the harness's server listened on {self.address} "
                 f"({self.listening.describe()})"]
        if self.queue_filled_with:
            queued = "" if self.queue_length is None else f", {self.queue_length} queued per /proc"
            lines.append(f"{self.queue_filled_with} filler connections queued before the client "
                         f"(accept queue full{queued})")
        if self.accepting_since is not None and self.listening.accept_after_s:
            lines.append(f"accepting from {self.accepting_since - self.started_at:+.3f} s")
        logs = self.connections
        lines += [log.describe(self.started_at) for log in logs]
        if not logs:
            lines.append("the client's connection was never accepted" if not
                         self.listening.accepts or self.listening.fill_queue else
                         "no connection from the client arrived")
        if self.refused:
            lines.append(f"{self.refused} further connections closed unanswered")
        return "\n    ".join(lines)

    # -- accepting -------------------------------------------------------------------

    def _accept_loop(self) -> None:
        if not self.listening.accepts or self._stop.wait(self.listening.accept_after_s):
            return
        self.accepting_since = time.monotonic()
        assert self._listener is not None
        listen_sock = self._listener.sock
        listen_sock.settimeout(ACCEPT_POLL_S)
        while not self._stop.is_set():
            try:
                conn, _ = listen_sock.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if exc.errno in (errno.ECONNABORTED, errno.EINTR):
                    continue
                return  # listener closed under us: stop() is running
            self._dispatch(conn)

    def _dispatch(self, conn: socket.socket) -> None:
        if self._fillers_to_skip:
            # FIFO accept queue: the first connections are the fillers, queued before the client.
            self._fillers_to_skip -= 1
            conn.close()
            return
        with self._lock:
            if len(self._logs) >= MAX_CONNECTIONS:
                self.refused += 1
                conn.close()
                return
            log = ConnectionLog(number=len(self._logs) + 1, accepted_at=time.monotonic())
            self._logs.append(log)
            self._live[log.number] = conn
        thread = threading.Thread(target=self._serve, args=(conn, log), daemon=True,
                                  name=f"adversary-conn-{log.number}")
        self._threads.append(thread)
        thread.start()

    def _serve(self, conn: socket.socket, log: ConnectionLog) -> None:
        try:
            serve_connection(conn, self.plan, log, self._stop)
        finally:
            with self._lock:
                self._live.pop(log.number, None)


def fill_accept_queue(address: Address, backlog: int) -> list[socket.socket]:
    """Connect to our own listener until its accept queue is full; return the connections.

    TCP: backlog + 1 connections fill it (the handshake of each completes at once
    while there is room). Unix: non-blocking connects until one fails with EAGAIN.
    """
    fillers: list[socket.socket] = []
    try:
        if isinstance(address, TcpAddress):
            for _ in range(min(backlog + 1, MAX_FILLERS)):
                sock = socket.socket(address.family, socket.SOCK_STREAM)
                fillers.append(sock)
                sock.settimeout(FILLER_CONNECT_TIMEOUT)
                sock.connect(address.sockaddr)
            return fillers
        for _ in range(MAX_FILLERS):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                sock.connect(address.path)
            except BlockingIOError:
                sock.close()
                return fillers
            fillers.append(sock)
        raise RuntimeError(f"the accept queue of {address} never filled")
    except BaseException:
        for sock in fillers:
            sock.close()
        raise


def tcp_accept_queue_length(address: TcpAddress) -> int | None:
    """Connections waiting in a TCP listener's accept queue, from /proc/net/tcp{,6}.

    For a socket in LISTEN state (st 0A) the rx_queue column is sk_ack_backlog.
    """
    table = "/proc/net/tcp6" if address.family == socket.AF_INET6 else "/proc/net/tcp"
    try:
        lines = Path(table).read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == address.port:
            return int(fields[4].split(":")[1], 16)
    return None


def max_length_unix_path(directory: str) -> str:
    """A path of exactly 107 bytes (sun_path is 108 bytes with the NUL) in ``directory``."""
    prefix = f"{directory.rstrip('/')}/max-path-"
    room = UNIX_PATH_MAX - 1 - len(prefix.encode()) - len(".sock")
    if room < 1:
        raise ValueError(f"{directory} is too long for a {UNIX_PATH_MAX - 1}-byte socket path")
    return f"{prefix}{'x' * room}.sock"
