"""echo and http as declarations of the same format as a user's ``[[protocol]]``.

The built-in profiles have their own catalogue (scenarios/*.py), which checks what no
declaration can say (an echo server's every owed byte, an http server's files). Their
declarations (``declarations/echo.toml``, ``http.toml``) are what ``server.protocol``
gives on an echo or http server, so a generic scenario (``profiles=(DECLARED,)``)
written in the user's own repository runs on those servers too, with the same
driver, framing and needs as on a declared protocol.
"""

from __future__ import annotations

import functools
from pathlib import Path

from sockspec.protocol.declared import BUILTIN_PROFILES, Protocol, parse_protocols

DECLARATIONS = Path(__file__).with_name("declarations")


@functools.cache
def builtin_protocol(profile: str) -> Protocol:
    """The declaration of a built-in profile (``echo`` or ``http``)."""
    if profile not in BUILTIN_PROFILES:
        raise KeyError(f"{profile!r} is not a built-in profile ({', '.join(BUILTIN_PROFILES)})")
    path = DECLARATIONS / f"{profile}.toml"
    (protocol,) = parse_protocols(path, path.read_text(), builtin=True)
    return protocol


def protocol_of(target) -> Protocol | None:
    """A target's declared protocol, or its built-in profile's declaration (None for a
    target of neither, such as a client of a declared protocol not yet given)."""
    if target.protocol is not None:
        return target.protocol
    if target.profile in BUILTIN_PROFILES:
        return builtin_protocol(target.profile)
    return None
