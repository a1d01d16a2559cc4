"""Measurement layer: latency, connection rate, concurrent connections, throughput.

Each module separates pure logic (planning, scheduling, summarising) from the
socket loops that produce numbers; native_loop.py (ping-pong, closed and open
loop) and native_connrate.py hold the same loops compiled with numba, for a C
client's cost per round trip and per connection.
Numbers land in HdrHistograms
(histogram.py); several load-generator processes are driven through execnet
(coordinator.py) and their histograms merged; netns.py builds a private
multi-host lab out of network namespaces. bench.py compares all of this
against C baselines and sockperf on the same machine.
"""
