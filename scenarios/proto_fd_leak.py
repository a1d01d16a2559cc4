"""fd-leak, for any declared protocol: every finished connection gives its descriptor back."""

import socket
from functools import partial

from sockspec.catalogue import DECLARED, scenario
from sockspec.drivers.declared import (
    close_at_once,
    exchange_then_leave,
    half_request_then_reset,
)
from sockspec.scenarios.fd_leak import CONNECT_TIMEOUT, FD_LEAK, _expect_no_leak
from sockspec.transport import abort
from sockspec.verdict import MUST


@scenario(FD_LEAK, profiles=(DECLARED,), needs=("exchange",), fresh_server=True,
          level=MUST,
          reason="a descriptor never closed is a leak (POSIX close()); the server hits "
          "EMFILE after enough clients")
def test_proto_fd_leak(server, metrics):
    """After 100 connections that end in four ways, the server holds no more descriptors.

    Trigger: 100 sequential connections, in turn: the first exchange then close();
    connect and close() without sending anything; the first request but its last
    byte, then RST (SO_LINGER {1, 0}); the first exchange then RST.
    Verdict: once its count settles, the server's process group holds at most 3
    descriptors more than before.
    Avoids: half-close (every FIN or RST comes after the reply, or instead of a whole
    request).
    """
    protocol, address = server.protocol, server.address
    _expect_no_leak(server, metrics, [
        ("exchange, close()", partial(exchange_then_leave, protocol, address, CONNECT_TIMEOUT,
                                      socket.socket.close)),
        ("close() without sending", partial(close_at_once, address, CONNECT_TIMEOUT)),
        ("half a request, RST", partial(half_request_then_reset, protocol, address,
                                        CONNECT_TIMEOUT)),
        ("exchange, RST", partial(exchange_then_leave, protocol, address, CONNECT_TIMEOUT,
                                  abort)),
    ])
