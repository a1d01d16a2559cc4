"""The textbook blocking server that every example server (kv, frames) builds on.

socket, SO_REUSEADDR, bind, listen, then an accept loop that starts one thread
per connection; the main thread only waits for SIGTERM/SIGINT (sigwait). A
protocol subclasses ``TextbookServer`` and fills in three methods:

    read_message(conn, buffer)  the next request, or None at the client's FIN
    framed(payload)             one reply as its pieces on the wire
    execute(request)            the reply to one request

Every other step is a small method too, so that a variant can subclass a server
and change one thing (examples/faulty/ does exactly that, to plant one defect
per variant). ``main(argv, server_class)`` is the command line of every example:

    python3 server.py -h HOST -p PORT [--backlog N]     # TCP (127.0.0.1, ::1, ...)
    python3 server.py -u PATH [--backlog N]             # Unix stream socket
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import signal
import socket
import struct
import sys
import threading
import time

# Signals that stop the server. The main thread waits for them with sigwait();
# every other thread has them blocked, so no blocking call is ever interrupted.
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}

RECV_SIZE = 64 * 1024           # bytes asked for per recv()
IDLE_TIMEOUT = 30.0             # seconds a client may keep the server waiting
ACCEPT_BACKOFF = 0.1            # seconds to wait when accept() runs out of descriptors
DRAIN_SECONDS = 2.0             # after the server's own FIN: read what the client
DRAIN_BYTES = 16 * 1024 * 1024  # still sends, for this long or this much, at most

# accept() errors that mean "out of resources for now": wait, then try again.
# (The pending connection stays in the listen queue meanwhile.)
TRANSIENT_ACCEPT_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class HangUp(Exception):
    """End the connection from the server's side, after sending ``reply`` (if any)."""

    def __init__(self, reply: bytes | None = None) -> None:
        super().__init__(reply)
        self.reply = reply


class TextbookServer:
    """One listening socket, one thread per connection.

    ``address`` is ``(host, port)`` for TCP or a path (str) for a Unix socket.
    ``serve_forever()`` runs until SIGTERM or SIGINT.
    """

    def __init__(self, address: tuple[str, int] | str, backlog: int = 128) -> None:
        self.address = address
        self.backlog = backlog
        self.listener: socket.socket | None = None
        self.socket_file: tuple[int, int] | None = None  # (st_dev, st_ino) of our Unix socket

    # -- the protocol (a subclass fills these in) -----------------------------------------

    def read_message(self, conn: socket.socket, buffer: bytearray) -> bytes | None:
        """The next request, or None at the client's FIN.

        TCP is a byte stream: one recv() may hold part of a message or several
        messages. ``buffer`` keeps what arrived past the message returned, for
        the next call. Raise ``HangUp`` to end the connection.
        """
        raise NotImplementedError

    def framed(self, payload: bytes) -> list[bytes]:
        """One reply on the wire, as its pieces: the payload and its framing."""
        raise NotImplementedError

    def execute(self, request: bytes) -> bytes:
        """The reply payload to one request; raise ``HangUp`` to end the connection."""
        raise NotImplementedError

    # -- the listening socket ----------------------------------------------------------

    def listen(self) -> None:
        """socket(), setsockopt(SO_REUSEADDR), bind(), listen()."""
        if isinstance(self.address, str):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            sock = socket.socket(ip_family(self.address[0]), socket.SOCK_STREAM)
            # Without it, a restarted server cannot bind while connections of the
            # previous one linger in TIME_WAIT.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(self.address)
            if isinstance(self.address, str):
                info = os.stat(self.address)
                self.socket_file = (info.st_dev, info.st_ino)
            sock.listen(self.backlog)
        except OSError:
            sock.close()
            self.remove_socket_file()
            raise
        self.listener = sock

    def close(self) -> None:
        """Close the listening socket and remove the Unix socket file we created."""
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        self.remove_socket_file()

    def remove_socket_file(self) -> None:
        """Unlink our Unix socket path, only if it still is the file bind() created."""
        if self.socket_file is None:
            return
        try:
            info = os.stat(self.address)
            if (info.st_dev, info.st_ino) == self.socket_file:
                os.unlink(self.address)
        except OSError:
            pass
        self.socket_file = None

    # -- running -----------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Listen, accept in a thread, return once SIGTERM or SIGINT arrives.

        Call from the main thread. The stop signals are blocked first, so every
        thread started afterwards inherits the block and only sigwait() takes them.
        """
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        self.listen()
        failure: list[BaseException] = []

        stopping = threading.Event()

        def accepting() -> None:
            try:
                self.accept_loop()
            except BaseException as exc:  # noqa: BLE001 (an accept() that cannot go on)
                if stopping.is_set():
                    return  # the listener was closed under accept(): the normal end
                failure.append(exc)
                signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)

        try:
            threading.Thread(target=accepting, name="accept", daemon=True).start()
            signal.sigwait(STOP_SIGNALS)
        finally:
            stopping.set()
            self.close()
        if failure:
            raise failure[0]

    def accept_loop(self) -> None:
        """Accept connections forever; each one gets its own thread."""
        while True:
            conn = self.accept()
            if conn is not None:
                self.spawn(conn)

    def accept(self) -> socket.socket | None:
        """One accept(); None after a failure that is worth retrying."""
        try:
            conn, _ = self.listener.accept()
        except ConnectionAbortedError:  # the client gave up while in the queue
            return None
        except OSError as exc:
            if exc.errno not in TRANSIENT_ACCEPT_ERRORS:
                raise
            # Out of descriptors (or memory): retrying at once would spin at 100 %
            # CPU. Pause; connections that end meanwhile free descriptors.
            time.sleep(ACCEPT_BACKOFF)
            return None
        return conn

    def spawn(self, conn: socket.socket) -> None:
        """Serve ``conn`` in a thread of its own."""
        thread = threading.Thread(target=self.handle, args=(conn,), daemon=True)
        try:
            thread.start()
        except RuntimeError:  # "can't start new thread": refuse this one, serve the rest
            conn.close()

    # -- one connection ----------------------------------------------------------------

    def handle(self, conn: socket.socket) -> None:
        """A connection thread: serve, and always close the socket, whatever happens."""
        try:
            # Bound every recv() and send() so a vanished client cannot hold its
            # thread forever (the call then fails with EAGAIN, an OSError).
            set_io_timeouts(conn, IDLE_TIMEOUT)
            self.serve(conn)
        except OSError:
            pass  # the client reset, vanished or went silent: drop the connection
        except Exception as exc:  # a bug: say so, and keep serving the others
            print(f"server: connection failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            conn.close()

    def serve(self, conn: socket.socket) -> None:
        """Answer each request in turn until the client's FIN, then finish."""
        buffer = bytearray()
        try:
            while (request := self.read_message(conn, buffer)) is not None:
                self.reply(conn, self.execute(request))
        except HangUp as end:
            if end.reply is not None:
                self.reply(conn, end.reply)
            self.hang_up(conn)
            return
        self.finish(conn)

    def reply(self, conn: socket.socket, payload: bytes) -> None:
        """Send one reply: framing and payload in ONE sendall(), which loops until the
        kernel took every byte (two small writes would meet Nagle's algorithm and the
        client's delayed ACK: 40 ms per reply)."""
        conn.sendall(b"".join(self.framed(payload)))

    def finish(self, conn: socket.socket) -> None:
        """After the client's FIN, every request is answered: send our FIN.

        The caller then closes; nothing is left unread, so close() sends no RST.
        """
        conn.shutdown(socket.SHUT_WR)

    def hang_up(self, conn: socket.socket) -> None:
        """End the connection before the client did (``HangUp``).

        Send our FIN, then read and drop what the client still sends until its
        FIN (bounded): closing with unread input would send an RST, which can
        destroy the last reply before the client reads it.
        """
        conn.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + DRAIN_SECONDS
        drained = 0
        while drained < DRAIN_BYTES and (left := deadline - time.monotonic()) > 0:
            conn.settimeout(left)
            try:
                chunk = conn.recv(RECV_SIZE)
            except TimeoutError:
                return
            if not chunk:
                return
            drained += len(chunk)


def ip_family(host: str) -> socket.AddressFamily:
    """AF_INET or AF_INET6 for a numeric address."""
    return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET


def set_io_timeouts(conn: socket.socket, seconds: float) -> None:
    """SO_RCVTIMEO and SO_SNDTIMEO: the socket stays blocking, each call is bounded."""
    value = struct.pack("ll", int(seconds), 0)  # struct timeval {tv_sec, tv_usec}
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)


# -- command line ------------------------------------------------------------------------


def parse_address(args: argparse.Namespace, parser: argparse.ArgumentParser):
    """``(host, port)`` or a Unix socket path from the options; exits 2 when wrong."""
    if args.path is not None:
        if args.host is not None or args.port is not None:
            parser.error("-u PATH excludes -h and -p")
        return args.path
    if args.port is None:
        parser.error("give -p PORT (TCP) or -u PATH (Unix socket)")
    host = args.host or "127.0.0.1"
    try:
        ipaddress.ip_address(host)  # a numeric address: no name lookup, ever
    except ValueError:
        parser.error(f"HOST must be an IP address such as 127.0.0.1 or ::1, not {host!r}")
    return host, args.port


def main(argv: list[str] | None, server_class: type[TextbookServer], description: str) -> int:
    """Run ``server_class`` on the address of the command line until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=description, add_help=False)
    parser.add_argument("--help", action="help", help="show this help and exit")
    parser.add_argument("-h", dest="host", metavar="HOST", help="IP address (default 127.0.0.1)")
    parser.add_argument("-p", dest="port", metavar="PORT", type=int, help="TCP port")
    parser.add_argument("-u", dest="path", metavar="PATH", help="Unix socket path")
    parser.add_argument("--backlog", type=int, default=128, metavar="N", help="listen() backlog")
    args = parser.parse_args(argv)
    server = server_class(parse_address(args, parser), args.backlog)
    try:
        server.serve_forever()
    except OSError as exc:
        print(f"server: {server.address}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
