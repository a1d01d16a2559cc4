"""Packets as evidence: capture a target's TCP segments, summarise them, craft exact ones.

- frames.py:  bytes of one captured frame -> a Segment record (pure)
- summary.py: Segments -> facts per connection: FIN/RST by side, retransmissions,
  zero windows, request->reply gaps (pure)
- summary_text.py: those facts in words, beside a verdict's evidence (pure)
- capture.py: an AF_PACKET sniffer filtered in the kernel by port; pcap files via scapy
- plugin.py:  the pytest plugin that captures scenario items and attaches the facts
- lab.py / wire.py: a private network namespace and a user-space TCP client that
  sends exactly the segments a wire-level scenario asks for
"""
