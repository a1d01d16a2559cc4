"""restart, for any declared protocol: after kill -9 with clients connected, it starts again at once."""

import socket

from sockspec.catalogue import DECLARED, scenario
from sockspec.drivers.declared import new_conversation, wire_of
from sockspec.scenarios.restart import (
    CONNECT_TIMEOUT,
    IDLE_CLIENTS,
    NOT_ON_UNIX,
    RESTART,
    _kill_restart_and_probe,
)
from sockspec.transport import connect, send_all
from sockspec.verdict import SHOULD


@scenario(RESTART, profiles=(DECLARED,), needs=("exchange",), fresh_server=True,
          not_on=NOT_ON_UNIX,
          level=SHOULD,
          reason="SO_REUSEADDR is universal practice; without it RFC 9293's TIME-WAIT "
          "legitimately blocks bind() for 60 s")
def test_proto_restart_after_kill(server, metrics):
    """After kill -9 with idle clients and one mid-request, a restart is ready within 5 s.

    Trigger: one client runs the first exchange (so it surely was accepted) and two
    more connect, all three stay idle; a fourth sends the first request but its last
    byte and stays; then SIGKILL to the server's process group and the same command
    started again.
    Verdict: it accepts on the same port within 5 s and answers a fresh first
    exchange as declared.
    Avoids: half-close and judging the killed connections: only the restart and a
    fresh exchange are judged.
    """
    protocol = server.protocol
    clients: list[socket.socket] = []
    try:
        first = connect(server.address, CONNECT_TIMEOUT)
        clients.append(first)
        # not judged: it only makes sure one connection was accepted before the kill
        answered = new_conversation(protocol, first, CONNECT_TIMEOUT).run(protocol.exchanges[0])
        clients += [connect(server.address, CONNECT_TIMEOUT) for _ in range(IDLE_CLIENTS - 1)]
        clients.append(connect(server.address, CONNECT_TIMEOUT))
        send_all(clients[-1], wire_of(protocol, 0)[:-1])
        _kill_restart_and_probe(server, metrics, f"{IDLE_CLIENTS} idle (the first after "
                                f"exchange {protocol.exchanges[0].name!r}: "
                                f"{'answered' if answered.ok else answered.problem}), "
                                "1 mid-request (all but the last byte of the first request)")
    finally:
        for sock in clients:
            sock.close()
