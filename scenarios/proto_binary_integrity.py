"""binary-integrity, for any declared protocol: every byte value the declaration allows travels unchanged."""

from sockspec.catalogue import DECLARED, scenario
from sockspec.drivers.declared import binary_payload, run_exchanges
from sockspec.scenarios.binary_integrity import BINARY_INTEGRITY
from sockspec.verdict import MUST, expect

REPLY_TIMEOUT = 5.0


@scenario(BINARY_INTEGRITY, profiles=(DECLARED,), needs=("binary",),
          level=MUST,
          reason="RFC 9293 3.1: TCP carries octets; the declaration says which part of a "
          "request comes back byte for byte")
def test_proto_every_byte_value(server):
    """The [protocol.binary] sequence carries a payload of every allowed byte value back identical.

    Trigger: the binary sequence's exchanges in order, sent whole, with {payload}
    made of every byte value its alphabet allows (with "all": 0-255, NUL, CR, LF and
    0x80-0xff included) ascending, descending and next to the lowest and highest
    value, repeated to its size.
    Verdict: every reply matches its declaration (the payload back byte for byte).
    Avoids: half-close (no FIN before the replies are in) and judging how the stream ends.
    """
    protocol = server.protocol
    sequence = protocol.binary
    extra = binary_payload(protocol, sequence)
    exchanges = protocol.sequence(sequence)
    outcomes = run_exchanges(protocol, server.address, REPLY_TIMEOUT, exchanges=exchanges,
                             extra=extra)
    last = outcomes[-1]
    values = sorted(set(extra["payload"]))
    expect(len(outcomes) == len(exchanges) and last.ok,
           f"exchange {last.exchange.name!r} of the binary sequence did not carry every "
           f"byte value back: {last.problem}",
           **last.facts(),
           payload_bytes=len(extra["payload"]),
           byte_values_in_payload=f"{len(values)} ({sequence.alphabet}: "
           f"0x{values[0]:02x}-0x{values[-1]:02x})",
           first_nul_at=extra["payload"].find(0) if 0 in values else "no NUL allowed",
           first_byte_over_0x7f_at=next((i for i, b in enumerate(extra["payload"])
                                         if b > 0x7F), "none allowed"))
