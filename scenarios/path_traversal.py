"""path-traversal: no request target reaches a file outside the document root.

The secret lives in server.outside_root, the parent of the root, so
``root + "/../secret"`` names it. Targets are sent byte for byte as written:
``%2e%2e`` and ``..%2f`` must be decoded before the check, not after.
"""

import os

from sockspec.catalogue import Family, scenario
from sockspec.errors import PeerError
from sockspec.preparing import preparing, write_file
from sockspec.reference.http_fetch import fetch
from sockspec.verdict import MUST, SHOULD, expect

PATH_TRAVERSAL = Family(
    name="path-traversal",
    behaviour="no request target (dot-dot segments, percent-encoded or not, or a symlink "
    "inside the root) serves a file outside the document root",
    hint="percent-decode the path first, refuse any '..' segment, then realpath() the joined "
    "path and refuse it unless it is still under realpath(root) (open with O_NOFOLLOW, or "
    "check again after open, to close the symlink race)",
)

REPLY_TIMEOUT = 5.0
SECRET = b"sockspec path-traversal secret 3f9e1c: must never be served\n"
SECRET_NAME = "secret"
# Body bytes kept per response: enough to find the secret in any sane reply.
BODY_KEEP_BYTES = 64 * 1024
DOTDOT_TARGETS = ("/../secret", "/%2e%2e/secret", "/..%2fsecret", "/sub/../../secret")
# Symlinks inside the root: one to the secret, one to the directory holding it.
SYMLINK_TARGETS = ("/link-to-secret", "/link-to-outside/secret")


def place_secret(server) -> None:
    write_file(server.outside_root / SECRET_NAME, SECRET, "write the secret file")
    # "/sub/../../secret" walks through a real directory, so a naive join
    # reaches the secret instead of failing on a missing "sub".
    server.put_file("sub/index.txt", b"inside the root\n")


def leak_of(server, target: str) -> str | None:
    """GET ``target``; describe the leak (200 or the secret's bytes), or None if refused."""
    kept = bytearray()

    def keep(chunk: memoryview) -> None:
        kept.extend(chunk[:max(0, BODY_KEEP_BYTES - len(kept))])

    try:
        response = fetch(server.address, target, timeout=REPLY_TIMEOUT, sink=keep,
                         await_close=False)
    except PeerError:
        return None  # closed or reset without a response: nothing was served
    has_secret = SECRET in kept
    if response.status != 200 and not has_secret:
        return None
    return (f"status {response.status} {response.reason}, {response.body_length} body bytes, "
            + ("the secret's bytes are in the body" if has_secret else "no secret bytes seen"))


def judge(server, targets: tuple[str, ...]) -> None:
    leaks = {target: leak_of(server, target) for target in targets}
    served = {target: leak for target, leak in leaks.items() if leak is not None}
    expect(not served,
           f"{len(served)} of {len(targets)} targets outside the root were served: "
           f"{', '.join(served)}",
           secret_file=str(server.outside_root / SECRET_NAME), document_root=str(server.root),
           **{f"GET {target}": leak for target, leak in served.items()})


@scenario(PATH_TRAVERSAL, profiles=("http",),
          level=MUST,
          reason="RFC 3986 5.2.4 and RFC 9110 7.1: dot-segments are removed before "
          "mapping; serving outside the root is a traversal")
def test_http_dotdot_stays_in_root(server):
    """Dot-dot targets, plain or percent-encoded, never get 200 or the secret outside the root.

    Trigger: GET /../secret, /%2e%2e/secret, /..%2fsecret and /sub/../../secret,
    with the secret in the root's parent directory. Verdict: no 200 and no
    secret bytes for any of them (403, 404, 400 or a closed connection pass).
    Avoids: half-close and judging how the stream ends: only the status and body are judged.
    """
    place_secret(server)
    judge(server, DOTDOT_TARGETS)


@scenario(PATH_TRAVERSAL, profiles=("http",),
          level=SHOULD,
          reason="following a symlink the root's owner placed is the documented default of "
          "nginx (disable_symlinks off) and Apache (FollowSymLinks): hardening, not "
          "traversal")
def test_http_symlink_stays_in_root(server):
    """A symlink inside the root that points outside it never serves the file behind it.

    Trigger: GET /link-to-secret (a symlink to the secret) and
    /link-to-outside/secret (a symlink to the secret's directory). Verdict: no
    200 and no secret bytes for either.
    Avoids: half-close and judging how the stream ends: only the status and body are judged.
    """
    place_secret(server)
    for name, points_to in (("link-to-secret", server.outside_root / SECRET_NAME),
                            ("link-to-outside", server.outside_root)):
        link = server.root / name
        if not link.is_symlink():
            with preparing(f"make the symlink {link}"):
                os.symlink(points_to, link)
    judge(server, SYMLINK_TARGETS)
