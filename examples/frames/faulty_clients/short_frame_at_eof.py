"""Faulty frames client: at the server's FIN, takes what came of a frame for the frame.

Like a read loop that stops at recv() == 0 without comparing the bytes read with the
length prefix: a reply cut by the FIN is printed as if complete, and the FIN then
ends the client with success. Fails the client family **client-short-body**; every
other client family passes (a reset is still an error). Proven by
tests/test_proto_clients.py.

    python3 short_frame_at_eof.py HOST:PORT --file IN [--timeout S]     like ../client.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import client  # noqa: E402
import textbook_client  # noqa: E402 (on sys.path once client is imported)

FAMILY = "client-short-body"
ALSO_FAILS = ()
TRANSPORTS = ("tcp",)


class EndOfStream(Exception):
    """The server's FIN came between frames."""


class ShortFrameReader(client.FrameReader):
    def frame(self) -> bytes:
        while True:
            if len(self.buffer) >= client.HEADER:
                length = int.from_bytes(self.buffer[:client.HEADER], "big")
                if len(self.buffer) >= client.HEADER + length:
                    payload = bytes(self.buffer[client.HEADER:client.HEADER + length])
                    del self.buffer[:client.HEADER + length]
                    return payload
            chunk = textbook_client.receive(self.sock)
            if not chunk:  # the defect: the length prefix is not checked at the FIN
                if not self.buffer:
                    raise EndOfStream
                payload = bytes(self.buffer[client.HEADER:])
                self.buffer.clear()
                return payload
            self.buffer += chunk


def main() -> int:
    client.FrameReader = ShortFrameReader
    try:
        return client.main()
    except EndOfStream:
        return 0  # the defect: the FIN is taken for the end of the conversation


if __name__ == "__main__":
    sys.exit(main())
