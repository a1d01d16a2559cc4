"""Data the harness trades with clients under test.

Every scenario but the binary one uses printable bytes with no NUL, so that a
client mangling NUL or non-UTF-8 bytes fails the binary family and no other.
"""

from __future__ import annotations

PRINTABLE_LINE = 64


def printable_bytes(size: int, *, seed: int = 0) -> bytes:
    """``size`` bytes of printable ASCII in 64-byte lines; no two neighbouring lines equal."""
    out = bytearray()
    line = seed
    while len(out) < size:
        text = f"sockspec client data line {line:08d} "
        text += "".join(chr(0x21 + (line * 7 + i * 13) % 94) for i in range(PRINTABLE_LINE))
        out += text[:PRINTABLE_LINE - 1].encode("ascii") + b"\n"
        line += 1
    return bytes(out[:size])


def every_byte_value(repeats: int) -> bytes:
    """Every byte value 0-255, starting with NUL, in three orders (up, down, stride 7),
    ``repeats`` times: CR, LF, NUL, 0x80-0xff (invalid UTF-8 alone) all appear often."""
    one = bytes(range(256)) + bytes(range(255, -1, -1)) + bytes((i * 7) % 256 for i in range(256))
    return one * repeats
