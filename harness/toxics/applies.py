"""Which verdicts mean nothing under which toxics: the items skipped, with the reason.

One declarative table, by family: the kinds of toxic under which its verdict says
nothing about the program (a latency figure under a latency toxic), and why.
Wire-level scenarios (those taking ``packet_evidence``) drive packets on the real
path to the program, which a relay would replace: they are skipped under any toxic.
"""

from __future__ import annotations

from sockspec.toxics.spec import KINDS, PACING_KINDS, TIMING_KINDS, ToxicProfile

ANY = frozenset(KINDS)

_MEASURED = ("it measures the program's own timing or capacity, and through the relay it "
             "would measure the relay and the toxic")
_BULK = ("it moves megabytes to gigabytes, which the toxic's pace would stretch far past the "
         "scenario's time limit")
_CLIENT_LIMIT = ("it judges the client against its stated time limit, which the toxic's pace "
                 "alone uses up")
_SLICED = ("it moves tens of kilobytes or more, which the slicer's segments stretch past the "
           "scenario's time limit")
SLICER = frozenset({"slicer"})
_ACCEPT = ("it needs the program's own listening socket and accept queue, and the relay "
           "accepts every connection itself")

# family -> (the kinds of toxic it means nothing under, why)
MEANINGLESS: dict[str, tuple[frozenset[str], str]] = {
    "latency": (ANY, _MEASURED),
    "latency-distribution": (ANY, _MEASURED),
    "throughput": (ANY, _MEASURED),
    "connection-rate": (ANY, _MEASURED),
    "sustained-load": (ANY, _MEASURED),
    "concurrent-connections": (ANY, _MEASURED),
    "sendfile-large": (PACING_KINDS, _BULK),
    "partial-writes": (PACING_KINDS, _BULK),
    "client-large-body": (PACING_KINDS, _BULK),
    "client-binary": (PACING_KINDS, _CLIENT_LIMIT),
    "client-half-close": (TIMING_KINDS, "it judges how soon the client ends after the "
                                        "server's FIN, which the toxic delays"),
    # etcproxy's pace (1 byte a segment, 1 ms apart: 1 KB/s) for tens of kilobytes
    "graceful-close": (SLICER, _SLICED),
    "client-abort": (SLICER, _SLICED),
    "odd-sizes": (SLICER, _SLICED),
    "binary-integrity": (SLICER, _SLICED),
    "restart": (SLICER, _SLICED),
    "client-reset-mid-response": (SLICER, _CLIENT_LIMIT),
    "backlog": (ANY, _ACCEPT),
    "client-accept-late": (ANY, _ACCEPT),
    "client-unix-max-path": (ANY, "the client is given a path of maximum length, and the "
                                  "relay listens on a path of its own"),
}
WIRE_FIXTURE = "packet_evidence"


def skip_reason(family: str, fixtures: list[str] | tuple[str, ...],
                profile: ToxicProfile | None) -> str | None:
    """Why an item of ``family`` is skipped under ``profile`` (None: it runs)."""
    if profile is None:
        return None
    if WIRE_FIXTURE in fixtures:
        return (f"wire-level: it sends and checks packets on the real path to the program, "
                f"which the toxics' relay ({profile.label}) would replace")
    kinds, why = MEANINGLESS.get(family, (frozenset(), ""))
    hit = sorted(profile.kinds() & kinds)
    if hit:
        return f"{family} means nothing under the {', '.join(hit)} toxic: {why}"
    return None
